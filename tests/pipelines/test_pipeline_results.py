"""read_results: a results file read back, and every file it cannot read refused with its path."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import AnalysisError, LensingSSCError
from lensing_ssc.pipelines import read_results

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

needs_h5py = pytest.mark.skipif(h5py is None, reason="needs h5py")


META = {
    "meta/lensing_ssc_version": "0",
    "meta/config": json.dumps({"run_dir": "runs/x"}),
    "meta/settings": json.dumps({"n_gal": [0.0]}),
    "meta/failures": json.dumps([]),
    "meta/sets": json.dumps({}),
}


def write_npz(path: Path, *, meta: bool = True) -> Path:
    """A small NPZ shaped like a results file (with or without its meta entries)."""
    payload = {"sets/subpatches/cl/ngal=0/mean": np.arange(3.0)}
    if meta:
        payload.update({key: np.array(text) for key, text in META.items()})
    np.savez_compressed(path, **payload)  # type: ignore[arg-type]
    return path


def test_a_results_shaped_npz_reads_back(tmp_path: Path) -> None:
    """The control for the refusals below: a well-formed NPZ gives its arrays and decoded meta."""
    path = write_npz(tmp_path / "r.npz")
    results = read_results(path)
    np.testing.assert_array_equal(results["sets/subpatches/cl/ngal=0/mean"], np.arange(3.0))
    assert results["meta/config"] == {"run_dir": "runs/x"}
    assert results["meta/lensing_ssc_version"] == "0"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            "patch_statistics.h5",
            marks=needs_h5py,
        ),
        "patch_statistics.npz",
    ],
)
def test_missing_file_is_an_analysis_error_naming_the_path(tmp_path: Path, name: str) -> None:
    """A path that does not exist raises AnalysisError with the path and where runs write it."""
    path = tmp_path / "results" / name
    with pytest.raises(AnalysisError, match="does not exist") as info:
        read_results(path)
    assert info.value.value == str(path)
    assert str(path) in str(info.value)
    assert "<run_dir>/results/patch_statistics.h5 or .npz" in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def _text(path: Path) -> None:
    path.write_text("mean,std\n1,2\n")


def _npy(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.arange(3.0))


def _truncated_npz(path: Path) -> None:
    whole = write_npz(path.with_name("whole.npz")).read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def _hdf5_without_meta(path: Path) -> None:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("maps", data=np.zeros(4))


def _directory(path: Path) -> None:
    path.mkdir()


@pytest.mark.parametrize(
    ("name", "make", "reason", "cause"),
    [
        pytest.param("r.h5", _text, "not a readable HDF5 file", OSError, marks=needs_h5py),
        ("r.npz", _text, "not a readable NPZ file", ValueError),
        ("r.npz", _npy, "a single .npy array, not an NPZ archive", None),
        ("r.npz", _truncated_npz, "not a readable NPZ file", zipfile.BadZipFile),
        ("r.npz", _directory, "not a readable NPZ file", OSError),
        ("r.npz", lambda p: write_npz(p, meta=False), "without the meta/config entry", None),
        pytest.param(
            "r.h5", _hdf5_without_meta, "without the meta/config entry", None, marks=needs_h5py
        ),
    ],
)
def test_unreadable_file_is_an_analysis_error_saying_what_was_expected(
    tmp_path: Path,
    name: str,
    make: Callable[[Path], object],
    reason: str,
    cause: type[BaseException] | None,
) -> None:
    """A file that is not a results file raises AnalysisError naming it, the original chained."""
    path = tmp_path / name
    make(path)
    with pytest.raises(AnalysisError) as info:
        read_results(path)
    message = str(info.value)
    assert message.startswith(f"cannot read results file {str(path)!r}: ")
    assert reason in message
    assert "expected a results file: `lensing-ssc run` writes" in message
    assert info.value.value == str(path)
    assert isinstance(info.value, LensingSSCError)
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)
