"""Stacking a set's patch rows as they arrive: the same samples as stacking them all at once,
and the memory of the samples alone when the rows are read back from a run's journal."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lensing_ssc.analysis import stack_patch_statistics
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._stacking import BLOCK_ROWS, RowStack
from lensing_ssc.pipelines._tasks import PackedStatistics
from lensing_ssc.processing.runner import run_map

WIDTH = 512
"""Values per row in the memory test: 4 KiB of float64, like a patch's ~30 statistics."""


def _row(index: int) -> PackedStatistics:
    rng = np.random.default_rng(index)
    return PackedStatistics.pack(
        {"cl": rng.standard_normal(8), "peaks": rng.standard_normal((2, 3)), "mean": [index]}
    )


def wide_row(index: int) -> PackedStatistics:
    return PackedStatistics.pack(
        {"a": np.full(WIDTH // 2, float(index)), "b": np.arange(WIDTH // 2) + index}
    )


@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, 3 * BLOCK_ROWS + 5), planned=st.integers(0, 3 * BLOCK_ROWS))
def test_rows_added_one_by_one_stack_as_the_dicts_do(count: int, planned: int) -> None:
    """Any number of rows, fewer or more than planned, across blocks: the samples of
    stacking their dicts, contiguous, one per statistic."""
    rows = [_row(index) for index in range(count)]
    stack = RowStack(planned)
    for row in rows:
        stack.add(row)
    arrays = stack.arrays()
    assert len(stack) == count
    if not count:
        assert arrays == {}
        return
    expected = stack_patch_statistics([row.unpack() for row in rows])
    assert list(arrays) == list(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(arrays[key], value)
        assert arrays[key].flags.c_contiguous


def test_rows_as_dicts_and_packed_rows_mixed_stack_as_dicts() -> None:
    """Rows given as ``{key: array}``, alone or after packed ones, stack like the dicts."""
    rows = [_row(index) for index in range(5)]
    dicts = [row.unpack() for row in rows]
    mixed = RowStack.of([*rows[:3], *dicts[3:]])
    expected = stack_patch_statistics(dicts)
    for stack in (mixed, RowStack.of(dicts)):
        arrays = stack.arrays()
        assert list(arrays) == list(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(arrays[key], value)


def test_a_row_of_other_statistics_is_refused_by_name() -> None:
    """A packed row whose statistics differ from the first's is named by the stacking."""
    odd = PackedStatistics.pack({"cl": np.zeros(8), "other": np.zeros(6), "mean": [0.0]})
    with pytest.raises(AnalysisError, match="has different keys"):
        RowStack.of([_row(0), _row(1), odd]).arrays()


def test_merging_rows_read_back_from_a_journal_holds_the_samples_once(tmp_path: Path) -> None:
    """Rows streamed from a resumed run's journal into their stack take the memory of the
    stacked samples and a block, not of every row besides (a list of rows, then one
    ``np.stack`` of them and a contiguous copy per statistic, took three times as much)."""
    path = tmp_path / "patches.journal"
    count = 4000
    run_map(wide_row, range(count), journal=path, fsync=False)
    restored = run_map(wide_row, range(count), journal=path, fsync=False)
    assert restored.skipped == count
    samples = count * WIDTH * 8
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        stack = RowStack(count)
        for row in restored.results:
            stack.add(row)
        arrays = stack.arrays()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert arrays["a"][:, 0].tolist() == [float(index) for index in range(count)]
    assert samples < peak < samples + 2 * BLOCK_ROWS * WIDTH * 8
