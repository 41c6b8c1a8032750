"""Tomography in the pipeline: cross spectra between the source redshifts of each realisation.

Maps are white Gaussian κ on the sphere (nside 64, 30° patches of 64² pixels: 19 patches per
map): ``bigbox`` draws each (seed, z_s) independently, ``tiled`` is a copy of it, and ``same``
holds one map per seed written at both redshifts.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import noise_sigma, patch_centers
from lensing_ssc.core.base.exceptions import AnalysisError
from lensing_ssc.pipelines import read_results, run_patch_statistics
from lensing_ssc.pipelines._healpix_maps import HealpixMap
from lensing_ssc.pipelines._map_recipes import MapTask
from lensing_ssc.pipelines._tasks import MapSummary
from lensing_ssc.pipelines._tomography import plan_tomography

from .conftest import assert_same_results, make_config

try:
    import healpy
except ImportError:  # pragma: no cover - exercised only without the extra
    healpy = None

try:
    import h5py
except ImportError:  # pragma: no cover - exercised only without the extra
    h5py = None

try:
    import xarray
except ImportError:  # pragma: no cover - exercised only without the extra
    xarray = None

pytestmark = pytest.mark.skipif(healpy is None, reason="needs the healpix extra (healpy)")

NSIDE = 64
SEEDS = (1, 2, 3)
PATTERN = "kappa_zs{zs}_s{seed}.fits"
HEALPIX: dict[str, Any] = {"patch_size_deg": 30.0, "patch_pixels": 64}
STATISTICS: dict[str, Any] = {
    "names": ["cl", "pdf"],
    "n_gal": [0, 30],
    "smoothing_arcmin": [60],
    "ell_min": 30,
    "ell_max": 300,
    "n_ell_bins": 4,
}
PATCHES_PER_MAP = 19


def _sky(seed: int, salt: int) -> np.ndarray:
    return 0.01 * np.random.default_rng([seed, salt]).standard_normal(12 * NSIDE**2)


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three suites on disk, named by the pattern."""
    root = tmp_path_factory.mktemp("suites")
    dirs = {name: root / name for name in ("bigbox", "same")}
    for path in dirs.values():
        path.mkdir()
    for seed in SEEDS:
        for zs in (1, 2):
            name = f"kappa_zs{zs}_s{seed}.fits"
            healpy.write_map(str(dirs["bigbox"] / name), _sky(seed, zs), dtype=np.float64)
            healpy.write_map(str(dirs["same"] / name), _sky(seed, 0), dtype=np.float64)
    dirs["tiled"] = root / "tiled"
    shutil.copytree(dirs["bigbox"], dirs["tiled"])
    return dirs


def _config(run_dir: Path, dirs: dict[str, Path], **pipeline: Any) -> Any:
    sets = {
        name: {"maps": str(path / "kappa_*.fits"), "pattern": PATTERN}
        for name, path in dirs.items()
    }
    return make_config(
        run_dir,
        input="healpix",
        healpix={**HEALPIX, "sets": sets},
        statistics=STATISTICS,
        **pipeline,
    )


@pytest.fixture(scope="module")
def compared(suites: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One run of every suite, comparing bigbox with tiled."""
    config = _config(
        tmp_path_factory.mktemp("compared") / "run", suites, compare=[["bigbox", "tiled"]]
    )
    return run_patch_statistics(config)


@pytest.fixture(scope="module")
def results(compared: Any) -> Any:
    """The compared run's results file, read back."""
    return read_results(compared.results_file)


def test_cross_spectra_of_identical_redshifts_equal_the_auto_spectra(results: Any) -> None:
    """One map at z_s 1 and 2: without noise every spectrum is the sets' Ĉ; with noise only the
    autos carry its bias."""
    quiet = results["tomography/same/cl/ngal=0/samples"]
    assert quiet.shape == (len(SEEDS) * PATCHES_PER_MAP, 3, 4)
    auto = results["sets/same/zs=1/cl/ngal=0/samples"]
    for row in range(3):
        np.testing.assert_array_equal(quiet[:, row, :], auto)
    np.testing.assert_allclose(results["tomography/same/cl/ngal=0/cross_correlation"], 1.0)
    noisy = results["tomography/same/cl/ngal=30/samples"]
    np.testing.assert_array_equal(noisy[:, 0, :], results["sets/same/zs=1/cl/ngal=30/samples"])
    np.testing.assert_array_equal(noisy[:, 2, :], results["sets/same/zs=2/cl/ngal=30/samples"])
    # The two redshifts' noise is independent: the cross spectrum is the noiseless one.
    cross, error = noisy[:, 1, :].mean(axis=0), noisy[:, 1, :].std(axis=0) / np.sqrt(len(noisy))
    assert np.all(np.abs(cross - auto.mean(axis=0)) < 4 * error)
    # The auto spectrum keeps the white noise bias σ_pix² A_pix, which the cross lacks.
    pixel = results["meta/sets"]["same/zs=1"]["pixel_size_arcmin"]
    bias = noise_sigma(30, pixel) ** 2 * np.radians(pixel / 60) ** 2
    excess = noisy[:, 0, :] - noisy[:, 1, :]
    spread = excess.std(axis=0, ddof=1) / np.sqrt(len(excess))
    assert np.all(np.abs(excess.mean(axis=0) - bias) < 4 * spread)
    assert np.all(spread < bias)


def test_cross_spectra_of_independent_redshifts_are_consistent_with_zero(results: Any) -> None:
    """Independent maps at z_s 1 and 2: the mean Ĉ_12 lies within 4 standard errors of 0."""
    for n_gal in (0, 30):
        rows = results[f"tomography/bigbox/cl/ngal={n_gal}/samples"][:, 1, :]
        error = rows.std(axis=0, ddof=1) / np.sqrt(len(rows))
        assert np.all(np.abs(rows.mean(axis=0)) < 4 * error), n_gal
        r = results[f"tomography/bigbox/cl/ngal={n_gal}/cross_correlation"][0, 1]
        assert np.all(np.abs(r) < 0.1)


def test_the_joint_covariance_stacks_every_spectrum_and_is_compared_between_sets(
    results: Any, compared: Any
) -> None:
    """The joint covariance is that of the (pair, ℓ) vector; same realisations give ratio 1."""
    samples = results["tomography/bigbox/cl/ngal=0/samples"]
    flat = samples.reshape(len(samples), -1)
    np.testing.assert_allclose(
        results["tomography/bigbox/cl/ngal=0/covariance"], np.cov(flat, rowvar=False), rtol=1e-10
    )
    assert results["tomography/bigbox/cl/ngal=0/mean"].shape == (3, 4)
    np.testing.assert_array_equal(results["tomography/bigbox/pairs"], [[0, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(results["tomography/bigbox/z_sources"], [1.0, 2.0])
    base = "ssc/bigbox~tiled/tomography/cl/ngal=0"
    np.testing.assert_allclose(results[f"{base}/variance_ratio"], 1.0, rtol=1e-12)
    low, high = results[f"{base}/variance_ratio_interval"]
    assert np.all(low <= 1.0)
    assert np.all(high >= 1.0)
    assert results[f"{base}/correlation"].shape == (2, 12, 12)
    np.testing.assert_allclose(*results[f"{base}/signal_to_noise"], rtol=1e-12)
    meta = results["meta/tomography"]
    assert meta["sets"]["bigbox"] == {
        "z_sources": [1.0, 2.0],
        "pairs": [[0, 0], [0, 1], [1, 1]],
        "realisations": [f"seed={s}" for s in SEEDS],
        "n_patches": len(SEEDS) * PATCHES_PER_MAP,
        "skipped": {},
        "dropped_patches": {},
    }
    assert meta["comparisons"]["bigbox~tiled/tomography"]["z_sources"] == [1.0, 2.0]
    summary = compared.summary_file.read_text()
    assert (
        "tomography  bigbox: z_s 1, 2, auto and cross C_ℓ of 3 realisation(s), 57 patches"
        in summary
    )
    assert "tomography  same: " in summary
    assert "r_ij(ℓ) = C_ij/√(C_ii C_jj), ngal=0: 1×2 1.00 1.00 1.00 1.00" in summary
    assert (
        "SSC         joint variance ratio bigbox / tiled of the spectra across z_s 1, 2 "
        "(ssc/bigbox~tiled/tomography)" in summary
    )
    assert "1×1 median bin 1.00" in summary
    assert "2×2 median bin 1.00" in summary


@pytest.mark.skipif(h5py is None, reason="needs the hdf5 extra (h5py)")
def test_tomography_datasets_carry_units_and_descriptions(compared: Any) -> None:
    """Every HDF5 dataset of the tomography has units and a description."""
    with h5py.File(compared.results_file, "r") as handle:
        assert handle["tomography/bigbox/cl/ngal=30/mean"].attrs["units"] == "sr"
        assert handle["tomography/bigbox/cl/ngal=30/covariance"].attrs["units"] == "sr²"
        r = handle["tomography/bigbox/cl/ngal=30/cross_correlation"]
        assert r.attrs["units"] == "1"
        assert "r_ij(ℓ) = C_ij / √(C_ii C_jj)" in r.attrs["description"]
        ratio = handle["ssc/bigbox~tiled/tomography/cl/ngal=0/variance_ratio"]
        assert "auto and cross C_ℓ of all source redshifts" in ratio.attrs["description"]


def test_the_results_object_reads_the_tomography(results: Any) -> None:
    """``tomography()`` gives spectra by redshift pair, bins and units; comparisons read too."""
    assert results.tomography_sets == ("bigbox", "same", "tiled")
    spectra = results.tomography("bigbox", n_gal=30)
    assert (spectra.key, spectra.units) == ("cl/ngal=30", "sr")
    assert (spectra.z_sources, spectra.pairs) == ((1.0, 2.0), ((0, 0), (0, 1), (1, 1)))
    np.testing.assert_array_equal(spectra.spectrum(2, 1), spectra.mean[1])
    assert spectra.pair_index(2.0, 2.0) == 2
    assert (spectra.binning.variable, spectra.binning.centers.shape) == ("ℓ", (4,))
    assert (spectra.realisations[0], spectra.realisations[-1]) == ("seed=1", "seed=3")
    assert results.tomography("same").n_gal == 0.0
    (pair,) = results.tomography_comparisons
    assert (pair.label, pair.z_sources, pair.path) == (
        "bigbox / tiled",
        (1.0, 2.0),
        "bigbox~tiled/tomography",
    )
    assert pair.statistics == ("cl/ngal=0", "cl/ngal=30")
    assert pair.statistic("cl/ngal=0").variance_ratio.shape == (12,)
    with pytest.raises(AnalysisError, match="set 'tiledd' has no tomography") as info:
        results.tomography("tiledd")
    assert info.value.hint == "sets with tomography: bigbox, same, tiled"
    with pytest.raises(AnalysisError, match="no source redshift pair \\(1, 3\\)"):
        spectra.spectrum(1, 3)


def test_a_rerun_takes_the_tomography_from_its_journal(
    suites: dict[str, Path], compared: Any, tmp_path: Path
) -> None:
    """Rerunning a finished run resumes every task, tomography included, with the same file."""
    shutil.copytree(compared.run_dir, tmp_path / "run")
    config = _config(tmp_path / "run", suites, compare=[["bigbox", "tiled"]])
    again = run_patch_statistics(config)
    n_maps = 3 * 2 * len(SEEDS)
    assert again.resumed == n_maps + n_maps * PATCHES_PER_MAP + 3 * len(SEEDS)
    assert (tmp_path / "run" / "tasks" / "tomography.journal").exists()
    assert_same_results(read_results(compared.results_file), read_results(again.results_file))


def test_a_realisation_missing_a_redshift_is_left_out_and_said(
    suites: dict[str, Path], tmp_path: Path
) -> None:
    """Seed 3 lacks its z_s = 2 map: the others form the joint vector; the summary says why."""
    partial = tmp_path / "partial"
    shutil.copytree(suites["bigbox"], partial)
    (partial / "kappa_zs2_s3.fits").unlink()
    run = run_patch_statistics(_config(tmp_path / "run", {"partial": partial}))
    results = read_results(run.results_file)
    meta = results["meta/tomography"]["sets"]["partial"]
    assert meta["realisations"] == ["seed=1", "seed=2"]
    assert meta["skipped"] == {"seed=3": "no map at z_s = 2"}
    assert results["tomography/partial/cl/ngal=0/samples"].shape[0] == 2 * PATCHES_PER_MAP
    assert "  partial seed=3 left out of the tomography: no map at z_s = 2" in (
        run.summary_file.read_text()
    )


def test_patches_masked_at_one_redshift_leave_only_their_places_out(
    suites: dict[str, Path], tmp_path: Path
) -> None:
    """Seed 1 masked at patch 3 for z_s = 1 and patch 11 for z_s = 2: its other 17 places pair.

    The maps are one sky at both z_s, so paired by place every cross spectrum equals both
    autos; paired by list order, the patches after the first masked one would not.
    """
    masked = tmp_path / "masked"
    shutil.copytree(suites["same"], masked)
    lon, lat = patch_centers(HEALPIX["patch_size_deg"])
    for zs, place in ((1, 3), (2, 11)):
        path = masked / f"kappa_zs{zs}_s1.fits"
        sky = healpy.read_map(str(path), dtype=np.float64)
        centre = healpy.ang2vec(lon[place], lat[place], lonlat=True)
        sky[healpy.query_disc(NSIDE, centre, np.radians(2.0))] = healpy.UNSEEN
        healpy.write_map(str(path), sky, dtype=np.float64, overwrite=True)
    run = run_patch_statistics(_config(tmp_path / "run", {"masked": masked}))
    results = read_results(run.results_file)
    meta = results["meta/tomography"]["sets"]["masked"]
    assert meta["dropped_patches"] == {"seed=1": 2}
    assert meta["skipped"] == {}
    assert meta["n_patches"] == len(SEEDS) * PATCHES_PER_MAP - 2
    quiet = results["tomography/masked/cl/ngal=0/samples"]
    np.testing.assert_array_equal(quiet[:, 1, :], quiet[:, 0, :])
    np.testing.assert_array_equal(quiet[:, 2, :], quiet[:, 0, :])
    # Each auto spectrum, noise included, is its map's own patch statistic at that place.
    noisy = results["tomography/masked/cl/ngal=30/samples"][: PATCHES_PER_MAP - 2]
    for zs, row, dropped_here, dropped_there in ((1, 0, 3, 11), (2, 2, 11, 3)):
        own = results[f"sets/masked/zs={zs}/cl/ngal=30/samples"][: PATCHES_PER_MAP - 1]
        places = [p for p in range(PATCHES_PER_MAP) if p != dropped_here]
        paired = [i for i, p in enumerate(places) if p != dropped_there]
        np.testing.assert_array_equal(noisy[:, row, :], own[paired])
    assert (
        "  masked seed=1: 2 patch place(s) left out of the tomography, dropped for the mask "
        "at some z_s but not all (meta/tomography)" in run.summary_file.read_text()
    )


def test_tomography_off_writes_none(suites: dict[str, Path], tmp_path: Path) -> None:
    """``tomography: false`` runs no tomography stage and writes no tomography datasets."""
    run = run_patch_statistics(
        _config(tmp_path / "run", {"bigbox": suites["bigbox"]}, tomography=False)
    )
    results = read_results(run.results_file)
    assert not any(key.startswith("tomography/") for key in results)
    assert results.tomography_sets == ()
    assert not (tmp_path / "run" / "tasks" / "tomography.journal").exists()


def _task(suite: str, z: float, index: int, fields: dict[str, Any], source: Any = None) -> MapTask:
    source = source or HealpixMap("x.fits", (0, 0), 0, 30.0, 64, None, "bilinear")
    metadata = tuple(sorted({**fields, "zs": z}.items()))
    return MapTask(f"{suite}/zs={z:g}", index, source, suite, z, metadata)


def _made(n_patches: int, positions: tuple[int, ...] | None = None) -> MapSummary:
    return MapSummary("m", n_patches, 64, 28.8, False, positions)


def test_maps_no_field_tells_apart_leave_their_set_out() -> None:
    """Two maps at one z_s with the same fields (no seed) cannot be paired across z_s."""
    maps = [_task("a", 1.0, 0, {}), _task("a", 1.0, 1, {}), _task("a", 2.0, 0, {})]
    plan = plan_tomography(maps, [_made(PATCHES_PER_MAP)] * 3)
    assert plan.tasks == ()
    assert plan.skipped["a"]["*"] == (
        "2 maps at z_s = 1 have no field but zs: x.fits, x.fits; nothing tells their "
        "realisations apart (add {seed} to the set's pattern)"
    )


def test_maps_that_dropped_masked_patches_pair_at_the_places_all_kept() -> None:
    """Places 3 (z_s = 1) and 5, 7 (z_s = 2) dropped: the 16 others pair up, 3 are counted."""
    maps = [_task("a", z, 0, {"seed": s}) for s in (1, 2, 3) for z in (1.0, 2.0)]
    made: list[MapSummary | None] = [_made(PATCHES_PER_MAP)] * 6
    every = range(PATCHES_PER_MAP)
    made[0] = _made(PATCHES_PER_MAP - 1, tuple(p for p in every if p != 3))
    made[1] = _made(PATCHES_PER_MAP - 2, tuple(p for p in every if p not in (5, 7)))
    made[4] = None
    plan = plan_tomography(maps, made)
    assert [t.key for t in plan.tasks] == ["a/seed=1", "a/seed=2"]
    first = plan.tasks[0]
    assert first.positions == tuple(p for p in every if p not in (3, 5, 7))
    # Rows in each map's own list: z_s = 1 lacks place 3, z_s = 2 places 5 and 7.
    assert first.rows[0][:6] == (0, 1, 2, 3, 5, 7)
    assert first.rows[1][:6] == (0, 1, 2, 4, 5, 6)
    assert plan.tasks[1].rows == (tuple(every), tuple(every))
    assert plan.dropped == {"a": {"seed=1": 3}}
    assert plan.skipped["a"] == {"seed=3": "its map at z_s = 1 (x.fits) failed"}
    assert plan.z_sources == {"a": (1.0, 2.0)}


def test_a_realisation_whose_maps_share_no_place_or_whose_journal_lacks_them_is_left_out() -> None:
    """No common place, or a map that dropped patches without recorded places: left out."""
    maps = [_task("a", z, 0, {"seed": s}) for s in (1, 2) for z in (1.0, 2.0)]
    made: list[MapSummary | None] = [
        _made(2, (0, 1)),
        _made(2, (2, 3)),
        _made(PATCHES_PER_MAP - 1),  # an older journal's summary: which one is missing?
        _made(PATCHES_PER_MAP),
    ]
    plan = plan_tomography(maps, made)
    assert plan.tasks == ()
    assert plan.skipped["a"] == {
        "seed=1": "no patch place is kept by its maps at every z_s (their masks)",
        "seed=2": "its map at z_s = 1 (x.fits) dropped patches for its mask and its journal "
        "does not say which: rerun with --fresh",
    }


@pytest.mark.skipif(xarray is None, reason="needs the xarray extra")
def test_to_xarray_lays_sets_on_redshifts_and_cross_spectra_on_redshift_pairs(
    results: Any,
) -> None:
    """Per-z_s statistics sit on a z_s dimension; cross spectra on (z_s, z_s_2), symmetric."""
    ds = results.to_xarray()
    assert list(ds["z_s"].values) == [1.0, 2.0]
    assert ds["cl_mean"].dims == ("set", "z_s", "n_gal", "ell")
    np.testing.assert_array_equal(
        ds["cl_mean"].sel(set="tiled", z_s=2, n_gal=30).values,
        results["sets/tiled/zs=2/cl/ngal=30/mean"],
    )
    assert list(ds["pair"].values) == ["bigbox~tiled"]
    cross = ds["cl_cross_mean"].sel(set="bigbox", n_gal=0)
    assert cross.dims == ("z_s", "z_s_2", "ell")
    mean = results["tomography/bigbox/cl/ngal=0/mean"]
    np.testing.assert_array_equal(cross.sel(z_s=1, z_s_2=2).values, mean[1])
    np.testing.assert_array_equal(cross.sel(z_s=2, z_s_2=1).values, mean[1])
    np.testing.assert_array_equal(cross.sel(z_s=2, z_s_2=2).values, mean[2])
    r = ds["cl_cross_correlation"].sel(set="same", n_gal=0)
    np.testing.assert_allclose(r.values, 1.0)
    assert ds["cl_cross_mean"].attrs["units"] == "sr"
