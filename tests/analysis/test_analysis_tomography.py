"""Tomography: auto and cross power spectra between source redshifts, and their joint covariance."""

from __future__ import annotations

import numpy as np
import pytest

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    compute_patch_statistics,
    gaussian_field,
    summarize,
)
from lensing_ssc.analysis._arrays import array_device, clear_constants, to_numpy
from lensing_ssc.analysis.statistics.power_spectrum import ell_binning
from lensing_ssc.analysis.tomography import (
    compute_tomographic_spectra,
    cross_correlation,
    spectrum_pairs,
)
from lensing_ssc.core.base.exceptions import AnalysisError

PIXEL = 2.0
N = 64
SETTINGS = StatisticsSettings.quick(statistics=["cl"], n_gal=[0, 30])


def _rngs(*seeds: int) -> list[np.random.Generator]:
    return [np.random.default_rng([7, seed]) for seed in seeds]


def test_cross_spectra_of_identical_redshifts_equal_the_auto_spectra(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """The same patch and noise stream at two z_s: every spectrum is the patch statistics' Ĉ."""
    kappa = gaussian_field(N, PIXEL, spectrum, rng)
    spectra = compute_tomographic_spectra([kappa, kappa], PIXEL, SETTINGS, _rngs(1, 1))
    for n_gal in SETTINGS.n_gal:
        key = f"cl/ngal={n_gal:g}"
        auto = compute_patch_statistics(kappa, PIXEL, SETTINGS, _rngs(1)[0])[key]
        assert spectra[key].shape == (3, SETTINGS.n_ell_bins)
        for row in spectra[key]:
            np.testing.assert_allclose(row, auto, rtol=1e-12)
        np.testing.assert_allclose(cross_correlation(spectra[key], 2), 1.0, rtol=1e-12)


def test_each_auto_spectrum_is_that_of_its_redshifts_patch_statistics(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """With each redshift's own noise generator, C_ii is the Ĉ its patch statistics measure."""
    low, high = (gaussian_field(N, PIXEL, spectrum, rng) for _ in range(2))
    spectra = compute_tomographic_spectra([low, high], PIXEL, SETTINGS, _rngs(1, 2))
    for n_gal in SETTINGS.n_gal:
        key = f"cl/ngal={n_gal:g}"
        for row, (patch, seed) in zip((0, 2), ((low, 1), (high, 2)), strict=True):
            expected = compute_patch_statistics(patch, PIXEL, SETTINGS, _rngs(seed)[0])[key]
            np.testing.assert_allclose(spectra[key][row], expected, rtol=1e-12)


def test_cross_spectrum_of_independent_maps_is_consistent_with_zero() -> None:
    """Independent white fields: the mean Ĉ_12 over 400 patches lies within 4σ of 0, and r ≈ 0."""
    rng = np.random.default_rng(11)
    rows = np.array(
        [
            compute_tomographic_spectra(
                [rng.normal(0, 0.01, (N, N)), rng.normal(0, 0.01, (N, N))],
                PIXEL,
                SETTINGS,
                _rngs(2 * i, 2 * i + 1),
            )["cl/ngal=30"]
            for i in range(400)
        ]
    )
    cross = rows[:, 1, :]
    error = cross.std(axis=0, ddof=1) / np.sqrt(len(rows))
    assert np.all(np.abs(cross.mean(axis=0)) < 4 * error)
    # The noise adds to the autos only: r is small, not merely diluted by a large cross noise.
    r = cross_correlation(rows.mean(axis=0), 2)[0, 1]
    assert np.all(np.abs(r) < 0.05)


def test_joint_covariance_of_correlated_redshifts_follows_the_gaussian_prediction() -> None:
    """κ₂ = a κ₁ + b w (white fields): mean C_ij and the joint covariance match Gaussian theory.

    For Gaussian fields Cov(Ĉ_ij, Ĉ_kl) = (C_ik C_jl + C_il C_jk)/N_b per ℓ bin (N_b full-plane
    modes; Knox 1995), zero between bins: the cross spectra are correlated with both autos.
    """
    rng = np.random.default_rng(5)
    settings = StatisticsSettings.quick(statistics=["cl"], n_gal=[0])
    a, b, sigma, count = 0.8, 0.6, 0.01, 800
    rows = []
    for i in range(count):
        first = rng.normal(0, sigma, (N, N))
        second = a * first + b * rng.normal(0, sigma, (N, N))
        rows.append(
            compute_tomographic_spectra([first, second], PIXEL, settings, _rngs(i, i))["cl/ngal=0"]
        )
    samples = np.array(rows)
    white = sigma**2 * (PIXEL * np.pi / 180 / 60) ** 2  # C of white noise: σ² A_pix
    truth = np.array([[1.0, a], [a, a * a + b * b]]) * white
    pairs = spectrum_pairs(2)
    mean = samples.mean(axis=0)
    for row, (i, j) in enumerate(pairs):
        np.testing.assert_allclose(mean[row], truth[i, j], rtol=0.03)
    r = cross_correlation(mean, 2)[0, 1]
    np.testing.assert_allclose(r, a / np.sqrt(a * a + b * b), atol=0.02)
    joint = summarize(samples.reshape(count, -1)).covariance
    n_bins = settings.n_ell_bins
    modes = ell_binning(N, PIXEL, settings.ell_edges).n_modes
    for p, (i, j) in enumerate(pairs):
        for q, (k, m) in enumerate(pairs):
            block = joint[p * n_bins : (p + 1) * n_bins, q * n_bins : (q + 1) * n_bins]
            expected = (truth[i, k] * truth[j, m] + truth[i, m] * truth[j, k]) / modes
            # 800 patches: a sample covariance scatters by ~√(2/800) = 5 % of its scale.
            np.testing.assert_allclose(np.diag(block), expected, rtol=0.25)
            off = block - np.diag(np.diag(block))
            assert np.all(np.abs(off) < 0.25 * np.sqrt(np.outer(expected, expected)))


def test_cross_correlation_is_nan_where_an_auto_spectrum_vanishes() -> None:
    """r_ij is NaN where C_ii ≤ 0, and the spectra's shape must match the redshift count."""
    r = cross_correlation(np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]]), 2)
    assert np.isnan(r[0, 1, 0])
    assert r[0, 1, 1] == 1.0
    with pytest.raises(AnalysisError, match=r"expected \(3, F\) spectra for 2 redshifts"):
        cross_correlation(np.ones((2, 4)), 2)


def test_bad_inputs_are_refused_with_the_reason() -> None:
    """One patch, mismatched generators, mixed sizes or settings without 'cl' are refused."""
    patch = np.zeros((N, N))
    patch[0, 0] = 1.0
    with pytest.raises(AnalysisError, match="at least 2") as info:
        compute_tomographic_spectra([patch], PIXEL, SETTINGS, _rngs(1))
    assert info.value.value == (1, 1)
    with pytest.raises(AnalysisError, match="2 patch\\(es\\), 1 generator"):
        compute_tomographic_spectra([patch, patch], PIXEL, SETTINGS, _rngs(1))
    with pytest.raises(AnalysisError, match="differ in size"):
        compute_tomographic_spectra([patch, patch[:32, :32]], PIXEL, SETTINGS, _rngs(1, 2))
    with pytest.raises(AnalysisError, match="do not measure 'cl'"):
        compute_tomographic_spectra(
            [patch, patch], PIXEL, StatisticsSettings.quick(statistics=["peaks"]), _rngs(1, 2)
        )


def test_patches_of_another_array_library_give_the_numpy_spectra_on_their_device(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """array_api_strict patches on a second device (what CuPy's are to NumPy: no NumPy call
    may take them), as a list or a stack: the NumPy spectra, on that device, and the same r."""
    strict = pytest.importorskip("array_api_strict", reason="the dev extra has array-api-strict")
    device = strict.Device("device1")
    low, high = (gaussian_field(N, PIXEL, spectrum, rng) for _ in range(2))
    want = compute_tomographic_spectra([low, high], PIXEL, SETTINGS, _rngs(1, 2))
    on_device = [strict.asarray(patch, device=device) for patch in (low, high)]
    clear_constants()
    try:
        with strict.ArrayAPIStrictFlags(boolean_indexing=False, data_dependent_shapes=False):
            listed = compute_tomographic_spectra(on_device, PIXEL, SETTINGS, _rngs(1, 2))
            stacked = compute_tomographic_spectra(
                strict.stack(on_device), PIXEL, SETTINGS, _rngs(1, 2)
            )
    finally:
        clear_constants()
    for got in (listed, stacked):
        assert sorted(got) == sorted(want)
        for key, values in want.items():
            assert array_device(got[key]) == device
            scale = float(np.abs(values).max())
            np.testing.assert_allclose(to_numpy(got[key]), values, rtol=0, atol=1e-12 * scale)
            np.testing.assert_allclose(
                cross_correlation(got[key], 2), cross_correlation(values, 2), rtol=1e-12
            )
