"""Gaussian smoothing: kernel width and normalisation, smoothed noise level, bad scales."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensing_ssc.analysis import gaussian_smooth
from lensing_ssc.analysis.smoothing import gaussian_window, smoothed_white_noise_sigma
from lensing_ssc.core.base.exceptions import AnalysisError


def test_smoothing_a_spike_gives_a_gaussian_of_the_requested_width() -> None:
    """A unit spike becomes a kernel of total 1 and per-axis variance σ_s² (within 0.5 %)."""
    n, pixel, sigma = 128, 0.5, 3.0
    spike = np.zeros((n, n))
    spike[n // 2, n // 2] = 1.0
    kernel = gaussian_smooth(spike, pixel, sigma)
    assert kernel.sum() == pytest.approx(1.0, rel=1e-12)
    x = (np.arange(n) - n // 2) * pixel
    variance_x = np.sum(kernel.sum(axis=0) * x**2)
    variance_y = np.sum(kernel.sum(axis=1) * x**2)
    assert variance_x == pytest.approx(sigma**2, rel=0.005)
    assert variance_y == pytest.approx(sigma**2, rel=0.005)


def test_zero_smoothing_is_the_identity(rng: np.random.Generator) -> None:
    """σ_s = 0 leaves the patch unchanged (to rounding)."""
    patch = rng.normal(size=(32, 32))
    np.testing.assert_allclose(gaussian_smooth(patch, 1.0, 0.0), patch, atol=1e-14)


def test_smoothed_noise_level_matches_measurement_and_continuum_limit(
    rng: np.random.Generator,
) -> None:
    """Smoothed white noise has the predicted std (2 %) ≈ σΔ/(2√π σ_s) for σ_s ≫ Δ (2 %)."""
    n, pixel, smoothing, sigma = 256, 1.0, 5.0, 0.1
    predicted = smoothed_white_noise_sigma(sigma, n, pixel, smoothing)
    measured = np.mean(
        [gaussian_smooth(rng.normal(0, sigma, (n, n)), pixel, smoothing).std() for _ in range(4)]
    )
    assert measured == pytest.approx(predicted, rel=0.02)
    assert predicted == pytest.approx(
        sigma * pixel / (2 * math.sqrt(math.pi) * smoothing), rel=0.02
    )


def test_window_is_read_only_and_cached() -> None:
    """The Fourier window is shared between calls and cannot be modified by accident."""
    window = gaussian_window(64, 1.0, 2.0)
    assert window is gaussian_window(64, 1.0, 2.0)
    with pytest.raises(ValueError, match="read-only"):
        window[0, 0] = 2.0


@pytest.mark.parametrize("smoothing", [-1.0, float("nan"), "wide"])
def test_bad_smoothing_scale_is_rejected(smoothing: object) -> None:
    """Negative or non-numeric smoothing raises AnalysisError naming the value."""
    with pytest.raises(AnalysisError, match="smoothing scale must be") as info:
        gaussian_smooth(np.zeros((16, 16)), 1.0, smoothing)  # type: ignore[arg-type]
    assert info.value.value is smoothing
