"""compute_patch_statistics: keys, invariances, noise level, reproducibility, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from lensing_ssc.analysis import (
    StatisticsSettings,
    compute_patch_statistics,
    gaussian_field,
    gaussian_smooth,
    noise_sigma,
    statistic_key,
    statistic_keys,
)
from lensing_ssc.analysis._grid import ARCMIN
from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
from lensing_ssc.analysis.statistics import ell_binning
from lensing_ssc.analysis.theory import gaussian_pdf_binned
from lensing_ssc.core.base.exceptions import AnalysisError

N, PIXEL = 128, 2.0
SETTINGS = StatisticsSettings.quick()


@pytest.fixture
def patch(spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator) -> np.ndarray:
    """One Gaussian 128² patch at 2′."""
    return gaussian_field(N, PIXEL, spectrum, rng)


def test_keys_shapes_and_order_are_as_documented(
    patch: np.ndarray, rng: np.random.Generator
) -> None:
    """Keys are statistic_keys(settings) in order, with one value per ℓ, bispectrum or ν bin."""
    result = compute_patch_statistics(patch, PIXEL, SETTINGS, rng)
    assert list(result) == statistic_keys(SETTINGS)
    assert result["cl/ngal=30"].shape == (SETTINGS.n_ell_bins,)
    assert result["bispectrum_squeezed/ngal=0"].shape == (SETTINGS.n_bispectrum_bins,)
    for name in ("pdf", "peaks", "minima", "v0", "v1", "v2"):
        assert result[f"{name}/ngal=0/smoothing=2"].shape == (SETTINGS.n_nu_bins,)
    assert len(result) == len(SETTINGS.n_gal) * (4 + 6 * len(SETTINGS.smoothing_arcmin))
    assert all(np.all(np.isfinite(v)) for v in result.values())


def test_rotating_the_patch_by_90_degrees_leaves_all_statistics_unchanged(
    patch: np.ndarray, rng: np.random.Generator
) -> None:
    """Without noise, np.rot90 of the patch gives every statistic to 1e-9 relative."""
    settings = StatisticsSettings.quick(n_gal=[0])
    reference = compute_patch_statistics(patch, PIXEL, settings, rng)
    for turns in (1, 2, 3):
        rotated = compute_patch_statistics(np.rot90(patch, turns), PIXEL, settings, rng)
        for key, values in reference.items():
            scale = float(np.abs(values).max()) or 1.0
            np.testing.assert_allclose(
                rotated[key], values, rtol=1e-9, atol=1e-9 * scale, err_msg=key
            )


def test_noise_only_patch_has_the_shape_noise_power_and_a_normal_nu_pdf(
    rng: np.random.Generator,
) -> None:
    """A zero patch with n_gal = 30 has Ĉ ≈ σ²A_pix (5 %) and a ν PDF within 4 σ of normal.

    ν is normalised by the analytic smoothed-noise level, so this also checks that level.
    """
    settings = StatisticsSettings.quick(
        n_gal=[30], smoothing_arcmin=[4.0], statistics=("cl", "pdf")
    )
    runs = [compute_patch_statistics(np.zeros((N, N)), PIXEL, settings, rng) for _ in range(20)]
    modes = ell_binning(N, PIXEL, settings.ell_edges).n_modes
    cl = np.mean([r["cl/ngal=30"] for r in runs], axis=0)
    expected = noise_sigma(30, PIXEL) ** 2 * (PIXEL * ARCMIN) ** 2
    assert np.sum(cl * modes) / modes.sum() == pytest.approx(expected, rel=0.05)
    pdfs = np.array([r["pdf/ngal=30/smoothing=4"] for r in runs])
    z = (pdfs.mean(axis=0) - gaussian_pdf_binned(settings.nu_edges)) / (
        pdfs.std(axis=0, ddof=1) / np.sqrt(len(pdfs))
    )
    assert np.all(np.abs(z) < 4.0)


def test_more_galaxies_means_less_noise_power(patch: np.ndarray, rng: np.random.Generator) -> None:
    """Ĉ at high ℓ decreases from n_gal = 7 to 50 and is lowest without noise."""
    settings = StatisticsSettings.quick(n_gal=[0, 7, 50], statistics=("cl",))
    result = compute_patch_statistics(patch, PIXEL, settings, rng)
    top = [result[f"cl/ngal={n}"][-1] for n in (7, 50, 0)]
    assert top[0] > top[1] > top[2]


def test_same_generator_seed_reproduces_the_noise(patch: np.ndarray) -> None:
    """Equal seeds give equal results; different seeds give different noisy statistics."""
    settings = StatisticsSettings.quick(statistics=("cl",))
    a = compute_patch_statistics(patch, PIXEL, settings, np.random.default_rng(5))
    b = compute_patch_statistics(patch, PIXEL, settings, np.random.default_rng(5))
    c = compute_patch_statistics(patch, PIXEL, settings, np.random.default_rng(6))
    np.testing.assert_array_equal(a["cl/ngal=30"], b["cl/ngal=30"])
    assert not np.array_equal(a["cl/ngal=30"], c["cl/ngal=30"])
    np.testing.assert_array_equal(a["cl/ngal=0"], c["cl/ngal=0"])


def test_nu_reference_chooses_the_normalisation(
    patch: np.ndarray, rng: np.random.Generator
) -> None:
    """'map' divides by the patch rms (ν variance 1 within 5 %), 'noise' by the noise (> 1.2)."""

    def nu_variance(reference: str) -> float:
        settings = StatisticsSettings.quick(
            n_gal=[30],
            smoothing_arcmin=[2.0],
            nu_min=-6,
            nu_max=6,
            n_nu_bins=48,
            statistics=("pdf",),
            nu_reference=reference,
        )
        pdf = compute_patch_statistics(patch, PIXEL, settings, np.random.default_rng(3))
        return float(np.sum(settings.nu_centers**2 * pdf["pdf/ngal=30/smoothing=2"]) * 0.25)

    assert nu_variance("map") == pytest.approx(1.0, rel=0.05)
    assert nu_variance("noise") > 1.2


def test_only_requested_statistics_are_computed(
    patch: np.ndarray, rng: np.random.Generator
) -> None:
    """Choosing peaks and the equilateral bispectrum yields exactly those keys."""
    settings = StatisticsSettings.quick(statistics=("peaks", "bispectrum_equilateral"))
    keys = set(compute_patch_statistics(patch, PIXEL, settings, rng))
    assert keys == {
        "bispectrum_equilateral/ngal=0",
        "bispectrum_equilateral/ngal=30",
        "peaks/ngal=0/smoothing=2",
        "peaks/ngal=0/smoothing=5",
        "peaks/ngal=30/smoothing=2",
        "peaks/ngal=30/smoothing=5",
    }


def test_wrong_shape_is_rejected(rng: np.random.Generator) -> None:
    """A 3-D stack of patches raises AnalysisError naming the shape and the fix."""
    with pytest.raises(AnalysisError, match=r"got shape \(2, 64, 64\)") as info:
        compute_patch_statistics(np.zeros((2, 64, 64)), PIXEL, SETTINGS, rng)
    assert "one (n, n) patch at a time" in str(info.value)


def test_nan_patch_is_rejected(rng: np.random.Generator) -> None:
    """A patch with NaNs raises AnalysisError before any statistic is computed."""
    patch = np.zeros((64, 64))
    patch[:2] = np.nan
    with pytest.raises(AnalysisError, match="contains 128 NaN"):
        compute_patch_statistics(patch, PIXEL, SETTINGS, rng)


def test_constant_patch_without_noise_is_rejected(rng: np.random.Generator) -> None:
    """ν is undefined for a constant noiseless patch: AnalysisError says so."""
    settings = StatisticsSettings.quick(n_gal=[0], statistics=("pdf",))
    with pytest.raises(AnalysisError, match="constant after smoothing"):
        compute_patch_statistics(np.ones((64, 64)), PIXEL, settings, rng)


def test_binning_that_does_not_fit_the_patch_is_rejected_before_work(
    rng: np.random.Generator,
) -> None:
    """ℓ_max above the patch's Nyquist multipole raises AnalysisError naming it."""
    with pytest.raises(AnalysisError, match="above the Nyquist multipole"):
        compute_patch_statistics(np.zeros((64, 64)), 6.0, SETTINGS, rng)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("power", 0), "unknown statistic 'power'"),
        (("cl", 0, 2.0), "no smoothing key"),
        (("pdf", 0), "give smoothing_arcmin"),
    ],
)
def test_statistic_key_rejects_wrong_combinations(args: tuple, message: str) -> None:
    """Keys exist only for known statistics, with smoothing exactly for map statistics."""
    with pytest.raises(AnalysisError, match=message):
        statistic_key(*args)


def test_subtracting_the_patch_mean_changes_map_statistics_only(patch: np.ndarray) -> None:
    """With the mean subtracted, κ + c gives the same map statistics; spectra ignore it anyway."""
    settings = StatisticsSettings.quick(nu_reference="global", nu_sigma=0.01)
    kept = StatisticsSettings.from_mapping({**settings.to_dict(), "subtract_patch_mean": False})
    shifted = patch + 0.02
    plain = compute_patch_statistics(patch, PIXEL, settings, np.random.default_rng(1))
    moved = compute_patch_statistics(shifted, PIXEL, settings, np.random.default_rng(1))
    moved_kept = compute_patch_statistics(shifted, PIXEL, kept, np.random.default_rng(1))
    for key, values in plain.items():
        np.testing.assert_allclose(moved[key], values, rtol=1e-9, atol=1e-12, err_msg=key)
        if key.startswith(("cl/", "bispectrum_")):
            np.testing.assert_allclose(moved_kept[key], values, rtol=1e-9, err_msg=key)
    # Kept, a mean of 2σ moves the PDF: its mean ν is about 2 instead of about 0.
    pdf = moved_kept["pdf/ngal=0/smoothing=2"]
    mean_nu = np.sum(settings.nu_centers * pdf) / np.sum(pdf)
    assert mean_nu > 1.5


def test_a_global_nu_sigma_puts_every_n_gal_on_one_scale(patch: np.ndarray) -> None:
    """nu_reference 'global' divides every n_gal by nu_sigma: ν = κ_s/σ, checked on n_gal = 0."""
    settings = StatisticsSettings.quick(
        n_gal=[0, 30],
        smoothing_arcmin=[2.0],
        nu_reference="global",
        nu_sigma=[0.005],
        nu_min=-6,
        nu_max=6,
        n_nu_bins=48,
        statistics=("pdf",),
    )
    for n_gal in settings.n_gal:
        assert settings.nu_normalisation(n_gal, 2.0, PIXEL, patch.shape[0]) == ("global", 0.005)
    pdf = compute_patch_statistics(patch, PIXEL, settings, np.random.default_rng(2))
    smoothed = gaussian_smooth(patch - patch.mean(), PIXEL, 2.0)
    expected, _ = np.histogram(smoothed / 0.005, bins=settings.nu_edges)
    np.testing.assert_allclose(
        pdf["pdf/ngal=0/smoothing=2"], expected / (patch.size * 0.25), rtol=1e-12, atol=1e-12
    )
    # On one scale, noise widens the distribution of ν instead of being divided out.
    second_moment = {key: np.sum(settings.nu_centers**2 * pdf[key]) for key in pdf}
    assert second_moment["pdf/ngal=30/smoothing=2"] > second_moment["pdf/ngal=0/smoothing=2"]


def test_nu_normalisation_says_which_sigma_each_setting_uses() -> None:
    """'noise' gives the noise σ for n_gal > 0 and 'map' (each patch's RMS) for n_gal = 0."""
    settings = StatisticsSettings.quick()
    reference, sigma = settings.nu_normalisation(30.0, 2.0, PIXEL, 128)
    assert reference == "noise"
    assert sigma is not None
    assert sigma > 0
    assert settings.nu_normalisation(0.0, 2.0, PIXEL, 128) == ("map", None)
    by_map = StatisticsSettings.quick(nu_reference="map")
    assert by_map.nu_normalisation(30.0, 2.0, PIXEL, 128) == ("map", None)
