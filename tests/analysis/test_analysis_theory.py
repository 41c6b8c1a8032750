"""Gaussian predictions: internal consistency of the formulas and analytic limits of the moments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensing_ssc.analysis import SpectralMoments, spectral_moments_on_grid
from lensing_ssc.analysis.smoothing import smoothed_white_noise_sigma
from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
from lensing_ssc.analysis.theory import (
    cross_convergence_spectrum,
    gaussian_minimum_counts_binned,
    gaussian_minkowski,
    gaussian_minkowski_binned,
    gaussian_pdf_binned,
    gaussian_peak_counts_binned,
    gaussian_peak_density,
    gaussian_peak_height_density,
)
from lensing_ssc.core.base.exceptions import AnalysisError

EDGES = np.linspace(-4.0, 4.0, 17)


def test_binned_minkowski_functionals_are_bin_averages_of_tomita() -> None:
    """V1, V2 binned equal the numerical bin average of the pointwise formulas (to 1e-6)."""
    moments = SpectralMoments(0.01, 0.004, 0.003)
    v0, v1, v2 = gaussian_minkowski_binned(EDGES, moments)
    fine = np.linspace(EDGES[:-1], EDGES[1:], 2001)
    _, p1, p2 = gaussian_minkowski(fine, moments)
    np.testing.assert_allclose(v1, np.trapezoid(p1, fine, axis=0) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(v2, np.trapezoid(p2, fine, axis=0) / 0.5, rtol=1e-6, atol=1e-12)
    centres = 0.5 * (EDGES[1:] + EDGES[:-1])
    np.testing.assert_allclose(v0, [0.5 * math.erfc(c / math.sqrt(2)) for c in centres])


def test_tomita_amplitudes_have_the_textbook_values() -> None:
    """At ν = 0, V1 = (σ1/σ0)/(8√2); V2 peaks at ν = 1 with (σ1/σ0)² e^{-1/2}/(2(2π)^{3/2})."""
    moments = SpectralMoments(2.0, 1.0, 1.0)
    _, v1, _ = gaussian_minkowski(np.array([0.0]), moments)
    assert v1[0] == pytest.approx(0.5 / (8 * math.sqrt(2)))
    _, _, v2 = gaussian_minkowski(np.array([1.0]), moments)
    assert v2[0] == pytest.approx(0.25 * math.exp(-0.5) / (2 * (2 * math.pi) ** 1.5))


def test_binned_pdf_integrates_to_the_normal_probability() -> None:
    """Σ pdf·Δν over [−4, 4] equals erf(4/√2)."""
    assert np.sum(gaussian_pdf_binned(EDGES) * 0.5) == pytest.approx(math.erf(4 / math.sqrt(2)))


@pytest.mark.parametrize("sigma2", [0.0015, 0.003, 0.006])
def test_peak_height_distribution_integrates_to_the_total_density(sigma2: float) -> None:
    """∫ n_pk(ν) dν (BE87) equals σ2²/(8√3π σ1²) (Longuet-Higgins) for several γ (to 1e-6)."""
    moments = SpectralMoments(0.01, 0.003, sigma2)
    nu = np.linspace(-12, 12, 24001)
    total = np.trapezoid(gaussian_peak_height_density(nu, moments), nu)
    assert total == pytest.approx(gaussian_peak_density(moments), rel=1e-6)


def test_minima_mirror_peaks() -> None:
    """Expected minima at ν equal expected peaks at −ν."""
    moments = SpectralMoments(0.01, 0.003, 0.002)
    peaks = gaussian_peak_counts_binned(EDGES, moments, 100.0)
    minima = gaussian_minimum_counts_binned(EDGES, moments, 100.0)
    np.testing.assert_allclose(minima, peaks[::-1], rtol=1e-12)


def test_white_noise_moments_have_analytic_limits() -> None:
    """Unsmoothed white noise has σ0 = σ_pix; smoothed with σ_s ≫ Δ, γ → 1/√2 (within 1 %)."""
    noise_only = spectral_moments_on_grid(256, 1.0, None, 0.0, noise_sigma=0.3)
    assert noise_only.sigma0 == pytest.approx(0.3, rel=1e-12)
    smoothed = spectral_moments_on_grid(256, 0.5, None, 4.0, noise_sigma=0.3)
    assert smoothed.gamma == pytest.approx(1 / math.sqrt(2), rel=0.01)
    # σ1/σ0 = 1/σ_s and σ2/σ1 = √2/σ_s for a Gaussian-smoothed white spectrum.
    assert smoothed.sigma1 / smoothed.sigma0 == pytest.approx(1 / 4.0, rel=0.01)
    assert smoothed.sigma0 == pytest.approx(smoothed_white_noise_sigma(0.3, 256, 0.5, 4.0))


def test_moments_with_noise_add_in_quadrature(spectrum: HalofitConvergenceSpectrum) -> None:
    """σ0² of signal + noise is the sum of the two variances."""
    signal = spectral_moments_on_grid(128, 1.0, spectrum, 2.0)
    noise = spectral_moments_on_grid(128, 1.0, None, 2.0, noise_sigma=0.05)
    both = spectral_moments_on_grid(128, 1.0, spectrum, 2.0, noise_sigma=0.05)
    assert both.sigma0**2 == pytest.approx(signal.sigma0**2 + noise.sigma0**2, rel=1e-12)


@pytest.mark.parametrize("field", ["sigma0", "sigma1", "sigma2"])
def test_non_positive_moment_is_rejected(field: str) -> None:
    """A zero moment raises AnalysisError naming it."""
    values = {"sigma0": 1.0, "sigma1": 1.0, "sigma2": 1.0, field: 0.0}
    with pytest.raises(AnalysisError, match=f"spectral moment {field}=0.0"):
        SpectralMoments(**values)


def test_single_scale_field_has_no_peak_height_distribution() -> None:
    """γ = 1 (a single-scale field) raises AnalysisError instead of dividing by zero."""
    with pytest.raises(AnalysisError, match="too close to 1"):
        gaussian_peak_height_density(np.zeros(3), SpectralMoments(1.0, 1.0, 1.0))


def test_moments_status_is_json_ready() -> None:
    """to_dict returns plain floats including γ."""
    status = SpectralMoments(1.0, 2.0, 5.0).to_dict()
    assert status == {"sigma0": 1.0, "sigma1": 2.0, "sigma2": 5.0, "gamma": 0.8}


def test_the_cross_spectrum_of_a_source_plane_with_itself_is_its_auto_spectrum() -> None:
    """C_11 from the cross formula equals HalofitConvergenceSpectrum at z_s = 1 (and linear)."""
    ell = np.geomspace(2.0, 3e4, 40)
    for nonlinear in (True, False):
        model = HalofitConvergenceSpectrum(z_source=1.0, nonlinear=nonlinear)
        np.testing.assert_allclose(cross_convergence_spectrum(model, model)(ell), model(ell))


def test_the_cross_spectrum_lies_between_the_autos_and_below_their_geometric_mean() -> None:
    """C_11 < C_12 < C_22 and r_12 < 1, falling from ~0.97 at ℓ = 2 to ~0.83 at ℓ = 200."""
    near, far = HalofitConvergenceSpectrum(z_source=1.0), HalofitConvergenceSpectrum(z_source=2.0)
    ell = np.array([2.0, 20.0, 200.0, 2000.0])
    cross = cross_convergence_spectrum(far, near)(ell)
    np.testing.assert_array_equal(cross, cross_convergence_spectrum(near, far)(ell))
    assert np.all((near(ell) < cross) & (cross < far(ell)))
    r = cross / np.sqrt(near(ell) * far(ell))
    assert r[0] == pytest.approx(0.97, abs=0.01)
    assert r[2] == pytest.approx(0.83, abs=0.02)
    assert np.all(r < 0.98)


def test_cross_spectra_of_two_cosmologies_are_refused() -> None:
    """Models differing in anything but z_s are an AnalysisError naming both."""
    near = HalofitConvergenceSpectrum(z_source=1.0)
    other = HalofitConvergenceSpectrum(z_source=2.0, sigma8=0.9)
    with pytest.raises(AnalysisError, match="one cosmology at two source redshifts") as caught:
        cross_convergence_spectrum(near, other)
    assert caught.value.value == (near, other)
