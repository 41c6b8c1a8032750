"""read_results: a results file read back with its typed view, units and bins, and every file
it cannot read refused with its path."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import AnalysisError, LensingSSCError
from lensing_ssc.pipelines import ResultsFile, read_results

from .conftest import make_config

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


# The typed view -------------------------------------------------------------------------


def test_results_are_a_mapping_of_paths_as_before(tiny_results: Mapping[str, Any]) -> None:
    """read_results still maps every dataset path to its array, so dict-style code keeps working."""
    assert isinstance(tiny_results, ResultsFile)
    assert isinstance(tiny_results, Mapping)
    ratio = tiny_results["ssc/cl/ngal=0/variance_ratio"]
    assert ratio.shape == (6,)
    assert "sets/subpatches/peaks/ngal=30/smoothing=2/mean" in tiny_results
    assert len(tiny_results) == len(list(tiny_results)) == len(dict(tiny_results))
    assert tiny_results.get("no/such/path") is None


def test_sets_statistics_and_a_summary_with_bins_and_units(tiny_results: ResultsFile) -> None:
    """The view names the sets and statistic keys, and gives a statistic's bins, units, numbers."""
    assert tiny_results.sets == ("subpatches", "periodic")
    assert tiny_results.redshifts == {"subpatches": (), "periodic": ()}
    assert tiny_results.statistics[0] == "cl/ngal=0"
    assert len(tiny_results.statistics) == 32
    cl = tiny_results.summary("cl/ngal=30", "subpatches")
    edges = tiny_results["binning/ell_edges"]
    np.testing.assert_allclose(cl.binning.centers, np.sqrt(edges[1:] * edges[:-1]))
    np.testing.assert_array_equal(cl.binning.edges, edges)
    assert (cl.binning.variable, cl.units, cl.n_gal, cl.smoothing_arcmin) == ("ℓ", "sr", 30.0, None)
    np.testing.assert_array_equal(cl.mean, tiny_results["sets/subpatches/cl/ngal=30/mean"])
    assert cl.covariance.shape == (6, 6)
    v1 = tiny_results.summary("v1/ngal=30/smoothing=2", "periodic")
    assert (v1.binning.variable, v1.units, v1.smoothing_arcmin) == ("ν", "arcmin⁻¹", 2.0)
    np.testing.assert_array_equal(v1.binning.centers, tiny_results["binning/nu_centers"])
    assert tiny_results.units("sets/periodic/v1/ngal=30/smoothing=2/covariance") == "arcmin⁻²"
    keys = tiny_results.statistic_keys(n_gal=30, smoothing=5)
    assert "cl/ngal=30" in keys
    assert "peaks/ngal=30/smoothing=5" in keys
    assert "peaks/ngal=30/smoothing=2" not in keys


def test_comparisons_give_ratios_intervals_signal_to_noise_and_ssc(
    tiny_results: ResultsFile,
) -> None:
    """The synthetic pair is one comparison whose statistics carry every compared quantity."""
    (pair,) = tiny_results.comparisons
    assert (pair.path, pair.label, pair.z_source) == ("", "subpatches / periodic", None)
    assert pair.resampling["n_resamples"] == 200
    cl = pair.statistic("cl/ngal=0")
    np.testing.assert_array_equal(cl.variance_ratio, tiny_results["ssc/cl/ngal=0/variance_ratio"])
    assert cl.variance_ratio_interval.shape == (2, 6)
    assert cl.signal_to_noise.shape == (2,)
    assert cl.has_ssc
    assert cl.ssc_predicted is not None
    assert cl.ssc_measured_interval is not None
    assert cl.ssc_measured_interval.shape == (2, 6)
    assert set(pair.joint()) == {
        "ngal=0/smoothing=2",
        "ngal=0/smoothing=5",
        "ngal=30/smoothing=2",
        "ngal=30/smoothing=5",
    }
    assert tiny_results.comparison("subpatches / periodic") is not None


def test_an_unknown_set_statistic_or_comparison_names_the_choices(
    tiny_results: ResultsFile,
) -> None:
    """Asking for what the file does not hold is an AnalysisError listing what it does hold."""
    with pytest.raises(AnalysisError, match="no single set 'bigbox'") as info:
        tiny_results.summary("cl/ngal=0", "bigbox")
    assert info.value.hint == "choose a set from subpatches, periodic"
    with pytest.raises(AnalysisError, match="has no statistic 'cl/ngal=7'") as info:
        tiny_results.summary("cl/ngal=7", "periodic")
    assert info.value.value == "cl/ngal=7"
    with pytest.raises(AnalysisError, match="no comparison 'a~b'"):
        tiny_results.comparison("a~b")


# Units, descriptions and bin centres in the file ------------------------------------------


@needs_h5py
def test_hdf5_datasets_carry_units_and_descriptions(tmp_path: Path) -> None:
    """Every HDF5 dataset has units and description attributes; ℓ bin centres are stored."""
    path = _tiny_run(tmp_path, "hdf5")
    with h5py.File(path, "r") as handle:
        mean = handle["sets/subpatches/cl/ngal=30/mean"]
        assert mean.attrs["units"] == "sr"
        assert "power spectrum C_ℓ" in mean.attrs["description"]
        assert handle["sets/subpatches/v2/ngal=0/smoothing=2/mean"].attrs["units"] == "arcmin⁻²"
        assert handle["ssc/cl/ngal=0/variance_ratio"].attrs["units"] == "1"
        assert handle["binning/ell_centers"].attrs["units"] == "rad⁻¹"
        edges = handle["binning/bispectrum_edges"][()]
        np.testing.assert_allclose(
            handle["binning/bispectrum_centers"][()], np.sqrt(edges[1:] * edges[:-1])
        )
        missing: list[str] = []
        handle.visititems(
            lambda name, node: (
                missing.append(name)
                if isinstance(node, h5py.Dataset) and "units" not in node.attrs
                else None
            )
        )
    assert missing == []
    results = read_results(path)
    assert results.description("ssc/cl/ngal=0/ssc_measured").endswith(
        "measured SSC excess (Var(num) − Var(den)) / Var(den)"
    )


def test_npz_has_the_same_units_entry(tmp_path: Path) -> None:
    """An NPZ results file holds units and descriptions of every dataset in meta/datasets."""
    results = read_results(_tiny_run(tmp_path, "npz"))
    arrays = [k for k in results if not k.startswith("meta/")]
    assert sorted(results["meta/datasets"]) == sorted(arrays)
    assert results["meta/datasets"]["sets/periodic/peaks/ngal=0/smoothing=2/covariance"] == {
        "units": "count²",
        "description": "peak counts per ν bin (n_gal = 0 arcmin⁻², σ_s = 2′): covariance over "
        "the set's patches (ddof = 1)",
    }


@needs_h5py
def test_a_file_written_before_units_and_centres_still_reads(tmp_path: Path) -> None:
    """A file of the earlier layout (no attributes, no ℓ centres) reads with derived ones."""
    path = _tiny_run(tmp_path, "hdf5")
    with h5py.File(path, "r+") as handle:
        del handle["binning/ell_centers"]
        del handle["binning/bispectrum_centers"]

        def strip(_: str, node: Any) -> None:
            if isinstance(node, h5py.Dataset):
                del node.attrs["units"]
                del node.attrs["description"]

        handle.visititems(strip)
        del handle["meta"].attrs["comparisons"]
    results = read_results(path)
    assert "meta/datasets" not in results
    assert "binning/ell_centers" not in results
    edges = results["binning/ell_edges"]
    np.testing.assert_allclose(
        results.binning("cl/ngal=0").centers, np.sqrt(edges[1:] * edges[:-1])
    )
    assert results.summary("cl/ngal=0", "subpatches").units == "sr"
    (pair,) = results.comparisons
    assert (pair.numerator, pair.denominator) == ("subpatches", "periodic")
    assert pair.statistic("cl/ngal=0").variance_ratio.shape == (6,)


def _tiny_run(tmp_path: Path, fmt: str) -> Path:
    """The results file of a tiny synthetic run in ``fmt``."""
    from lensing_ssc.pipelines import run_patch_statistics

    config = make_config(tmp_path / f"run-{fmt}", results_format=fmt)
    return run_patch_statistics(config).results_file
