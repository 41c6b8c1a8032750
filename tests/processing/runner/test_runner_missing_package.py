"""A missing package (``ModuleNotFoundError``, any ``ImportError``) is an item's failure at once.

Retrying cannot install a package: every attempt fails the same way, so the runner records
the item after one call whatever ``retries`` says, on every executor.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lensing_ssc.processing.runner import TaskRunner

EXECUTORS = ["serial", "threads", "processes"]


def needs_h5py(item: tuple[int, str]) -> int:
    """Count the call in a file, then fail as a missing h5py does."""
    index, folder = item
    with open(Path(folder) / f"calls-{index}", "a") as calls:
        calls.write(".")
    raise ModuleNotFoundError('HDF5 results need h5py: pip install "lensing-ssc[hdf5]"')


def broken_import(item: tuple[int, str]) -> int:
    """Count the call in a file, then fail as an import of a broken installation does."""
    index, folder = item
    with open(Path(folder) / f"calls-{index}", "a") as calls:
        calls.write(".")
    raise ImportError("cannot import name 'thing' from 'somewhere'")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_missing_package_fails_the_item_after_one_attempt(executor: str, tmp_path: Path) -> None:
    """A ModuleNotFoundError is recorded after one call although retries=3."""
    with TaskRunner(executor, max_workers=2, retries=3) as runner:
        result = runner.map(needs_h5py, [(0, str(tmp_path)), (1, str(tmp_path))])
    assert [f.attempts for f in result.failures] == [1, 1]
    assert [f.error_type for f in result.failures] == ["ModuleNotFoundError"] * 2
    assert "lensing-ssc[hdf5]" in result.failures[0].message
    assert [len((tmp_path / f"calls-{i}").read_text()) for i in (0, 1)] == [1, 1]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_import_error_is_not_retried(executor: str, tmp_path: Path) -> None:
    """Any ImportError is recorded after one call although retries=2."""
    with TaskRunner(executor, max_workers=2, retries=2) as runner:
        result = runner.map(broken_import, [(0, str(tmp_path))])
    (failure,) = result.failures
    assert (failure.error_type, failure.attempts) == ("ImportError", 1)
    assert (tmp_path / "calls-0").read_text() == "."
