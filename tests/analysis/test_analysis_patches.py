"""HEALPix patches (Fibonacci centres, gnomonic projection, non-overlap) and flat patch files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.analysis import (
    cut_healpix_patches,
    fibonacci_grid,
    gnomonic_patch,
    load_flat_patch,
    patch_centers,
)
from lensing_ssc.analysis.patches import _unit_vectors
from lensing_ssc.core.base.exceptions import AnalysisError

hp = pytest.importorskip("healpy")


def _coordinate_map(nside: int, axis: int) -> np.ndarray:
    return np.array(hp.pix2vec(nside, np.arange(hp.nside2npix(nside))))[axis]


def test_fibonacci_grid_is_equal_area() -> None:
    """Points fall in latitude bands in proportion to the bands' areas (to one point)."""
    lon, lat = fibonacci_grid(1000)
    assert lon.shape == lat.shape == (1000,)
    z = np.sin(np.radians(lat))
    counts, _ = np.histogram(z, bins=10, range=(-1, 1))
    assert np.all(np.abs(counts - 100) <= 1)


def test_patch_centres_never_overlap_and_cover_the_sphere() -> None:
    """All centres are ≥ 2 × the circumradius apart, and 10° patches number over 120."""
    side = 10.0
    lon, lat = patch_centers(side)
    vectors = _unit_vectors(lon, lat)
    angles = np.arccos(np.clip(vectors @ vectors.T, -1, 1)) + 4 * np.eye(lon.size)
    separation = 2 * math.atan(math.sqrt(2) * math.tan(math.radians(side) / 2))
    assert angles.min() >= separation
    assert lon.size > 120


def test_explicit_grid_size_is_pruned_to_non_overlapping_centres() -> None:
    """With a dense grid of 2000 points, the kept 10° centres still never overlap."""
    lon, lat = patch_centers(10.0, n_points=2000)
    vectors = _unit_vectors(lon, lat)
    angles = np.arccos(np.clip(vectors @ vectors.T, -1, 1)) + 4 * np.eye(lon.size)
    assert angles.min() >= 2 * math.atan(math.sqrt(2) * math.tan(math.radians(5.0)))
    assert 0 < lon.size < 2000


@pytest.mark.parametrize("side", [180.0, 250.0, 0.0, -5.0, float("nan")])
def test_patch_larger_than_the_sphere_allows_is_rejected(side: float) -> None:
    """A side ≥ 180° (or ≤ 0) raises AnalysisError naming the value and the valid range."""
    with pytest.raises(AnalysisError, match="larger than the sphere allows") as info:
        patch_centers(side)
    assert "0 < patch_size_deg < 180" in str(info.value)
    assert info.value.value is side


def test_gnomonic_patch_follows_the_tangent_plane_geometry() -> None:
    """On the map z = cos θ, a patch at (0°, 0°) reads y/√(1+x²+y²) (north up, to 2e-3)."""
    nside, n, side = 256, 32, 20.0
    patch = gnomonic_patch(_coordinate_map(nside, 2), 0.0, 0.0, side, n)
    half = math.tan(math.radians(side) / 2)
    coords = (np.arange(n) + 0.5) * (2 * half / n) - half
    expected = coords[:, None] / np.sqrt(1 + coords[None, :] ** 2 + coords[:, None] ** 2)
    np.testing.assert_allclose(patch, expected, atol=2e-3)
    east = gnomonic_patch(_coordinate_map(nside, 1), 0.0, 0.0, side, n)  # y = sin φ: east
    assert np.all(np.diff(east, axis=1) > 0)


def test_patches_near_the_pole_and_across_longitude_zero_are_continuous() -> None:
    """Patches centred on the pole and on lon = 0 read a smooth map without jumps."""
    nside = 128
    z_map = _coordinate_map(nside, 2)
    polar = gnomonic_patch(z_map, 0.0, 90.0, 10.0, 32, interpolation="nearest")
    assert polar.min() > math.cos(math.radians(8.0))
    wrapped = gnomonic_patch(_coordinate_map(nside, 0), 0.0, 30.0, 10.0, 32)
    assert np.abs(np.diff(wrapped, axis=1)).max() < 0.02


def test_cutting_many_patches_reports_centres_and_pixel_size() -> None:
    """cut_healpix_patches returns one patch per centre and the flat-sky pixel size 2 tan(s/2)/n."""
    nside = 64
    healpix_map = _coordinate_map(nside, 2)
    result = cut_healpix_patches(healpix_map, 30.0, 16)
    assert result.patches.shape == (result.lon_deg.size, 16, 16)
    expected = 2 * math.tan(math.radians(15.0)) / 16 * 180 * 60 / math.pi
    assert result.pixel_size_arcmin == pytest.approx(expected)
    chosen = cut_healpix_patches(healpix_map, 30.0, 16, centers=([0.0], [90.0]))
    assert chosen.patches.shape == (1, 16, 16)


def test_patch_spectrum_of_a_synthetic_sky_matches_its_input() -> None:
    """Patches of a healpy.synfast sky (nside 512) recover the input C_ℓ within 15 % for ℓ 100–250.

    Twelve 20° patches give a statistical error of ~4 %; HEALPix pixels and bilinear
    interpolation suppress power by ≲ 6 % at ℓ = 250 on this grid.
    """
    from lensing_ssc.analysis.statistics import band_average, binned_power_spectrum, ell_binning

    nside = 512
    ell = np.arange(3 * nside)
    cl = np.where(ell > 0, 1e-9 * (ell + 10.0) ** -1.2, 0.0)
    np.random.seed(3)  # healpy.synfast draws from numpy's global generator
    sky = hp.synfast(cl, nside)
    patches = cut_healpix_patches(sky, 20.0, 128, centers=fibonacci_grid(12))
    edges = np.array([100.0, 150.0, 250.0])
    pixel = patches.pixel_size_arcmin
    measured = np.mean([binned_power_spectrum(p, pixel, edges) for p in patches.patches], axis=0)
    expected = band_average(ell_binning(128, pixel, edges), pixel, lambda x: np.interp(x, ell, cl))
    np.testing.assert_allclose(measured, expected, rtol=0.15)


@pytest.mark.parametrize(
    ("healpix_map", "message"),
    [
        (np.zeros(1000), "12·nside² pixels, got shape"),
        (np.zeros((2, 768)), "12·nside² pixels, got shape"),
    ],
)
def test_map_of_the_wrong_shape_is_rejected(healpix_map: np.ndarray, message: str) -> None:
    """Arrays that are not one HEALPix map raise AnalysisError naming the shape."""
    with pytest.raises(AnalysisError, match=message) as info:
        cut_healpix_patches(healpix_map, 10.0, 16)
    assert info.value.value == healpix_map.shape


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.6375e30])
def test_map_with_nan_or_unseen_pixels_is_rejected(bad: float) -> None:
    """NaN, inf or UNSEEN pixels raise AnalysisError saying how many and how to fix it."""
    healpix_map = np.zeros(hp.nside2npix(16))
    healpix_map[[3, 7]] = bad
    with pytest.raises(AnalysisError, match="has 2 NaN, infinite or UNSEEN pixels") as info:
        gnomonic_patch(healpix_map, 0.0, 0.0, 10.0, 16)
    assert "fill masked pixels" in str(info.value)


def test_unknown_interpolation_and_tiny_patches_are_rejected() -> None:
    """An unknown interpolation or fewer than 8 pixels raise AnalysisError."""
    healpix_map = np.zeros(hp.nside2npix(16))
    with pytest.raises(AnalysisError, match="unknown interpolation 'cubic'"):
        gnomonic_patch(healpix_map, 0.0, 0.0, 10.0, 16, interpolation="cubic")  # type: ignore[arg-type]
    with pytest.raises(AnalysisError, match="n_pixels must be an integer ≥ 8"):
        gnomonic_patch(healpix_map, 0.0, 0.0, 10.0, 4)


def test_npy_and_fits_patches_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    """A patch saved as .npy or .fits loads back unchanged as float64."""
    fits = pytest.importorskip("astropy.io.fits")
    patch = rng.normal(size=(32, 32)).astype(np.float32)
    np.save(tmp_path / "p.npy", patch)
    fits.PrimaryHDU(patch).writeto(tmp_path / "p.fits")
    for name in ("p.npy", "p.fits"):
        loaded = load_flat_patch(tmp_path / name)
        assert loaded.dtype == np.float64
        np.testing.assert_array_equal(loaded, patch)


def test_fits_image_in_an_extension_is_found(tmp_path: Path) -> None:
    """The first image HDU is used even when the primary HDU is empty."""
    fits = pytest.importorskip("astropy.io.fits")
    image = np.arange(64.0).reshape(8, 8)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image)]).writeto(tmp_path / "ext.fits")
    np.testing.assert_array_equal(load_flat_patch(tmp_path / "ext.fits"), image)


def test_bad_patch_files_are_rejected(tmp_path: Path) -> None:
    """Unknown suffixes, missing files, non-square and NaN patches raise AnalysisError."""
    with pytest.raises(AnalysisError, match=r"use a \.npy or \.fits file"):
        load_flat_patch(tmp_path / "patch.txt")
    with pytest.raises(AnalysisError, match="cannot read"):
        load_flat_patch(tmp_path / "missing.npy")
    np.save(tmp_path / "wide.npy", np.zeros((16, 32)))
    with pytest.raises(AnalysisError, match=r"patch in wide.npy must be a square 2-D array"):
        load_flat_patch(tmp_path / "wide.npy")
    np.save(tmp_path / "nan.npy", np.full((16, 16), np.nan))
    with pytest.raises(AnalysisError, match="contains 256 NaN"):
        load_flat_patch(tmp_path / "nan.npy")
    (tmp_path / "junk.fits").write_bytes(b"not a fits file")
    with pytest.raises(AnalysisError, match="cannot read"):
        load_flat_patch(tmp_path / "junk.fits")


def _cap_map(nside: int, cap_deg: float, rng: np.random.Generator) -> np.ndarray:
    """A noise map whose pixels within ``cap_deg`` of the north pole are UNSEEN."""
    sky = 1e-2 * rng.standard_normal(hp.nside2npix(nside))
    theta, _ = hp.pix2ang(nside, np.arange(sky.size))
    sky[theta < np.radians(cap_deg)] = hp.UNSEEN
    return sky


def test_patches_over_an_unseen_region_are_dropped_and_counted(rng: np.random.Generator) -> None:
    """Patches touching UNSEEN pixels are dropped and counted; the rest equal the unmasked cut."""
    sky = _cap_map(64, 40.0, rng)
    full = cut_healpix_patches(np.where(sky == hp.UNSEEN, 0.0, sky), 30.0, 16)
    cut = cut_healpix_patches(sky, 30.0, 16)
    assert cut.n_dropped > 0
    assert full.n_dropped == 0
    assert len(cut.patches) + cut.n_dropped == len(full.patches)
    assert np.all(cut.lat_deg < 50.0 + 21.0)  # no kept centre lies inside the cap
    kept = np.isin(full.lat_deg, cut.lat_deg) & np.isin(full.lon_deg, cut.lon_deg)
    np.testing.assert_array_equal(cut.patches, full.patches[kept])
    np.testing.assert_array_equal(cut.masked_fraction, 0.0)


def test_a_patch_just_under_the_threshold_is_kept_and_filled_with_its_observed_mean(
    rng: np.random.Generator,
) -> None:
    """A patch masked at fraction f is kept at max_masked_fraction = f, filled with its mean."""
    sky = _cap_map(64, 40.0, rng)
    centre = ([0.0], [45.0])  # a 30° patch at latitude 45° straddles the cap's edge at 50°
    probe = cut_healpix_patches(sky, 30.0, 32, centers=centre, max_masked_fraction=0.99)
    [fraction] = probe.masked_fraction
    assert 0.0 < fraction < 0.99
    kept = cut_healpix_patches(sky, 30.0, 32, centers=centre, max_masked_fraction=fraction)
    dropped = cut_healpix_patches(
        sky, 30.0, 32, centers=centre, max_masked_fraction=fraction * 0.99
    )
    assert (len(kept.patches), kept.n_dropped) == (1, 0)
    assert (len(dropped.patches), dropped.n_dropped) == (0, 1)
    patch = kept.patches[0]
    filled = patch == patch[-1, 0]  # the northern rows lie in the cap
    assert filled.mean() == pytest.approx(fraction, abs=2 / patch.size)
    assert patch[-1, 0] == pytest.approx(patch[~filled].mean(), rel=1e-12)
    assert np.isfinite(patch).all()


def test_a_mask_map_masks_like_unseen_pixels(rng: np.random.Generator) -> None:
    """Zeros of the mask map drop the same patches as UNSEEN pixels there would."""
    sky = _cap_map(64, 40.0, rng)
    unseen = sky == hp.UNSEEN
    by_mask = cut_healpix_patches(np.where(unseen, 0.0, sky), 30.0, 16, mask=~unseen)
    by_value = cut_healpix_patches(sky, 30.0, 16)
    assert by_mask.n_dropped == by_value.n_dropped > 0
    np.testing.assert_array_equal(by_mask.patches, by_value.patches)
    with pytest.raises(AnalysisError, match="the mask has shape") as info:
        cut_healpix_patches(sky, 30.0, 16, mask=np.ones(12))
    assert info.value.value == (12,)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, "half"])
def test_a_max_masked_fraction_outside_zero_to_one_is_rejected(fraction: object) -> None:
    """max_masked_fraction must be a number in [0, 1): else AnalysisError names the value."""
    with pytest.raises(AnalysisError, match="max_masked_fraction must be") as info:
        cut_healpix_patches(np.zeros(hp.nside2npix(16)), 30.0, 16, max_masked_fraction=fraction)  # type: ignore[arg-type]
    assert info.value.value == fraction


def test_an_entirely_masked_map_is_an_analysis_error() -> None:
    """A map without one observed pixel raises AnalysisError saying it is entirely masked."""
    sky = np.full(hp.nside2npix(16), hp.UNSEEN)
    with pytest.raises(AnalysisError, match="entirely masked") as info:
        cut_healpix_patches(sky, 30.0, 16)
    assert info.value.value == sky.size
