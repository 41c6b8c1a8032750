"""Binned power spectrum: normalisation, recovery of a known C(ℓ), scatter, symmetry, bad input.

Every test taking ``xp`` runs on NumPy and on array_api_strict (see ``conftest.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import gaussian_field
from lensing_ssc.analysis._grid import ARCMIN
from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
from lensing_ssc.analysis.statistics import (
    band_average,
    binned_power_spectrum,
    ell_binning,
    log_ell_edges,
)
from lensing_ssc.core.base.exceptions import AnalysisError

from .conftest import host, on

N, PIXEL = 256, 1.0
EDGES = log_ell_edges(300, 3000, 8)


def test_single_fourier_mode_has_the_exact_power(xp: Any) -> None:
    """A cosine of amplitude A on one mode gives Ĉ = A_pix A² n² / (2 N_b) in its bin (to 1e-10)."""
    binning = ell_binning(N, PIXEL, EDGES)
    k = 9  # ℓ = 9 ℓ_f ≈ 759, in one bin
    x = np.arange(N)
    amplitude = 0.01
    patch = amplitude * np.cos(2 * np.pi * k * x / N)[None, :] * np.ones((N, 1))
    ell = k * 2 * np.pi / (N * PIXEL * ARCMIN)
    b = int(np.searchsorted(EDGES, ell, side="right") - 1)
    cl = host(binned_power_spectrum(on(xp, patch), PIXEL, EDGES))
    expected = (PIXEL * ARCMIN) ** 2 * amplitude**2 * N**2 / (2 * binning.n_modes[b])
    assert cl[b] == pytest.approx(expected, rel=1e-10)
    assert np.all(np.delete(cl, b) < 1e-12 * expected)


def test_white_noise_power_is_sigma_squared_times_pixel_area(
    rng: np.random.Generator, xp: Any
) -> None:
    """White noise of per-pixel σ has flat Ĉ = σ² A_pix: the mode-weighted mean agrees within 3 %.

    Over 10 maps (one stack) and ~3900 modes the statistical error is 0.7 %, so 3 % is a 4 σ
    bound.
    """
    sigma = 0.05
    cls = host(binned_power_spectrum(on(xp, rng.normal(0, sigma, (10, N, N))), PIXEL, EDGES))
    modes = ell_binning(N, PIXEL, EDGES).n_modes
    expected = sigma**2 * (PIXEL * ARCMIN) ** 2
    assert np.sum(np.mean(cls, axis=0) * modes) / modes.sum() == pytest.approx(expected, rel=0.03)


def test_gaussian_field_recovers_input_spectrum_within_expected_scatter(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator, xp: Any
) -> None:
    """Mean Ĉ over 40 Gaussian fields is within 4 σ (σ = C √(2/N_b) / √40) of the input per bin."""
    realisations = 40
    fields = gaussian_field(N, PIXEL, spectrum, rng, n_fields=realisations)
    cls = host(binned_power_spectrum(on(xp, fields), PIXEL, EDGES))
    binning = ell_binning(N, PIXEL, EDGES)
    expected = band_average(binning, PIXEL, spectrum)
    # Per-mode power is exponential, but the band average over modes of slightly different C
    # has variance Σ C_k² / N_b² × 2; bins are narrow enough that C varies little within them.
    sigma = expected * np.sqrt(2.0 / binning.n_modes) / math.sqrt(realisations)
    z = (cls.mean(axis=0) - expected) / sigma
    assert np.all(np.abs(z) < 4.0), z


def test_gaussian_field_scatter_matches_cosmic_variance(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """The variance of Ĉ across 40 fields, pooled over 8 bins, is 2C²/N_b within 25 % (3 σ)."""
    fields = gaussian_field(N, PIXEL, spectrum, rng, n_fields=40)
    cls = np.array([binned_power_spectrum(f, PIXEL, EDGES) for f in fields])
    binning = ell_binning(N, PIXEL, EDGES)
    expected = band_average(binning, PIXEL, spectrum)
    ratio = cls.var(axis=0, ddof=1) / (2.0 * expected**2 / binning.n_modes)
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.25)


def test_rotating_the_patch_by_90_degrees_leaves_the_spectrum_unchanged(
    rng: np.random.Generator, xp: Any
) -> None:
    """np.rot90 of a patch gives the same Ĉ to 1e-12 relative."""
    patch = rng.normal(size=(N, N))
    cl = host(binned_power_spectrum(on(xp, patch), PIXEL, EDGES))
    for turns in (1, 2, 3):
        rotated = binned_power_spectrum(on(xp, np.rot90(patch, turns)), PIXEL, EDGES)
        np.testing.assert_allclose(host(rotated), cl, rtol=1e-12)


def test_binning_reports_mode_counts_and_mean_ell() -> None:
    """Mode counts add up to the modes in the annulus, and the mean ℓ lies inside each bin."""
    binning = ell_binning(N, PIXEL, EDGES)
    assert np.all(binning.ell_mean >= EDGES[:-1])
    assert np.all(binning.ell_mean < EDGES[1:])
    ky, kx = np.meshgrid(np.fft.fftfreq(N, 1 / N), np.fft.fftfreq(N, 1 / N), indexing="ij")
    ell = np.hypot(kx, ky) * 2 * np.pi / (N * PIXEL * ARCMIN)
    in_range = (ell >= EDGES[0]) & (ell < EDGES[-1])
    assert binning.n_modes.sum() == in_range.sum()


def test_non_square_patch_is_rejected_with_its_shape() -> None:
    """A (64, 32) patch raises AnalysisError naming the shape."""
    with pytest.raises(AnalysisError, match=r"square 2-D array, got shape \(64, 32\)") as info:
        binned_power_spectrum(np.zeros((64, 32)), PIXEL, EDGES)
    assert info.value.value == (64, 32)


def test_nan_in_patch_is_rejected_with_the_count(xp: Any) -> None:
    """A patch with 2 NaNs raises AnalysisError saying how many and what to do."""
    patch = np.zeros((64, 64))
    patch[3, 4] = patch[10, 10] = np.nan
    with pytest.raises(AnalysisError, match="contains 2 NaN or infinite pixel") as info:
        binned_power_spectrum(on(xp, patch), PIXEL, log_ell_edges(500, 3000, 3))
    assert info.value.value == 2
    assert "fill or cut out masked pixels" in str(info.value)


def test_bin_without_modes_is_rejected_with_a_fix() -> None:
    """A bin narrower than the fundamental ℓ raises AnalysisError suggesting wider bins."""
    with pytest.raises(AnalysisError, match="holds no Fourier mode") as info:
        binned_power_spectrum(np.zeros((32, 32)), 2.0, [100.0, 101.0, 3000.0])
    assert "wider bins" in str(info.value)


def test_ell_max_above_nyquist_is_rejected() -> None:
    """ℓ_max above π/Δ raises AnalysisError naming ℓ_max."""
    with pytest.raises(AnalysisError, match="above the Nyquist multipole") as info:
        binned_power_spectrum(np.zeros((64, 64)), 10.0, log_ell_edges(300, 3000, 4))
    assert info.value.value == pytest.approx(3000.0)


@pytest.mark.parametrize("edges", [[300.0, 200.0, 3000.0], [0.0, 300.0], [300.0]])
def test_bad_edges_are_rejected(edges: list[float]) -> None:
    """Unsorted, non-positive or single edges raise AnalysisError."""
    with pytest.raises(AnalysisError, match="ℓ bin edges"):
        binned_power_spectrum(np.zeros((64, 64)), 1.0, edges)


@pytest.mark.parametrize("pixel", [0.0, -1.0, float("nan"), "big"])
def test_bad_pixel_size_is_rejected(pixel: object) -> None:
    """A non-positive or non-numeric pixel size raises AnalysisError naming pixel_size_arcmin."""
    with pytest.raises(AnalysisError, match="pixel_size_arcmin"):
        binned_power_spectrum(np.zeros((64, 64)), pixel, EDGES)  # type: ignore[arg-type]
