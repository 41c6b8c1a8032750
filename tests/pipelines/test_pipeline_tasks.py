"""What the patch stage hands back: packed statistics, and how the merge stacks them."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lensing_ssc.analysis import (
    StatisticsSettings,
    compute_patch_statistics,
    stack_patch_statistics,
)
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines._merged_results import merge_patch_results
from lensing_ssc.pipelines._tasks import PackedStatistics

arrays = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
    elements=st.floats(allow_nan=False, width=64),
)
stats_dicts = st.dictionaries(st.text(min_size=1, max_size=12), arrays, max_size=6)


@given(stats=stats_dicts)
def test_packing_round_trips_every_statistic_and_its_shape(stats: dict[str, np.ndarray]) -> None:
    """Unpacking (also after a pickle round trip) gives back each key, shape and value."""
    packed = pickle.loads(pickle.dumps(PackedStatistics.pack(stats)))
    unpacked = packed.unpack()
    assert list(unpacked) == list(stats)
    for key, value in stats.items():
        assert unpacked[key].shape == value.shape
        np.testing.assert_array_equal(unpacked[key], value)


def _patch_stats(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    settings = StatisticsSettings.quick()
    return [
        compute_patch_statistics(rng.standard_normal((64, 64)) * 0.02, 2.0, settings, rng)
        for _ in range(count)
    ]


def test_merging_packed_patches_gives_the_samples_of_their_dicts() -> None:
    """The merge's stacking of packed patches equals stacking the statistics dicts."""
    rows = _patch_stats(5)
    merged = merge_patch_results(
        {"periodic": [PackedStatistics.pack(r) for r in rows]},
        info={"periodic": ("periodic fields", 5, 2.0, 64)},
        settings=StatisticsSettings.quick(),
        failures=(),
        config={},
    )
    expected = stack_patch_statistics(rows)
    samples = merged.sets["periodic"].samples
    assert list(samples) == list(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(samples[key], value)
        assert samples[key].flags.c_contiguous


def test_patches_packed_with_other_keys_are_refused_by_name() -> None:
    """Rows that disagree fall back to the general stacking, which names the difference."""
    first, second = _patch_stats(2)
    del second[next(iter(second))]
    with pytest.raises(AnalysisError, match="has different keys"):
        merge_patch_results(
            {"periodic": [PackedStatistics.pack(first), PackedStatistics.pack(second)]},
            info={"periodic": ("periodic fields", 2, 2.0, 64)},
            settings=StatisticsSettings.quick(),
            failures=(),
            config={},
        )
