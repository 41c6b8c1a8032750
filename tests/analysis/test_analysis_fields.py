"""Gaussian and lognormal fields: variance, skewness, bounds, reproducibility, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lensing_ssc.analysis import gaussian_field, lognormal_field, spectral_moments_on_grid
from lensing_ssc.analysis.spectra import HalofitConvergenceSpectrum
from lensing_ssc.analysis.statistics import (
    band_average,
    binned_power_spectrum,
    ell_binning,
    log_ell_edges,
)
from lensing_ssc.core.base.exceptions import AnalysisError

N, PIXEL = 128, 2.0


def _skewness(values: np.ndarray) -> float:
    centred = values - values.mean()
    return float(np.mean(centred**3) / np.mean(centred**2) ** 1.5)


def test_gaussian_field_variance_and_mean_match_the_spectrum(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """Each field has zero mean (1e-15); the mean variance over 20 is Σ C/A within 5 %."""
    fields = gaussian_field(N, PIXEL, spectrum, rng, n_fields=20)
    assert fields.shape == (20, N, N)
    assert np.abs(fields.mean(axis=(1, 2))).max() < 1e-15
    expected = spectral_moments_on_grid(N, PIXEL, spectrum).sigma0 ** 2
    assert fields.var(axis=(1, 2)).mean() == pytest.approx(expected, rel=0.05)
    assert abs(_skewness(fields)) < 0.05


def test_same_seed_same_field_and_other_seed_other_field(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """Fields are reproducible from the seed and differ between seeds."""
    a = gaussian_field(64, PIXEL, spectrum, np.random.default_rng(1))
    b = gaussian_field(64, PIXEL, spectrum, np.random.default_rng(1))
    c = gaussian_field(64, PIXEL, spectrum, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_lognormal_field_has_target_spectrum_bound_and_lognormal_skewness(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """Lognormal κ: C(ℓ) within 10 % of target, κ > −λ, skewness 3ε + ε³ (ε = σ/λ) within 10 %."""
    shift = 0.04
    fields = lognormal_field(N, PIXEL, spectrum, rng, shift=shift, n_fields=40)
    assert fields.min() > -shift
    assert abs(fields.mean()) < 0.02 * fields.std()
    edges = log_ell_edges(300, 3000, 6)
    cls = np.array([binned_power_spectrum(f, PIXEL, edges) for f in fields])
    target = band_average(ell_binning(N, PIXEL, edges), PIXEL, spectrum)
    np.testing.assert_allclose(cls.mean(axis=0), target, rtol=0.10)
    epsilon = fields.std() / shift
    assert _skewness(fields) == pytest.approx(3 * epsilon + epsilon**3, rel=0.10)


def test_unhashable_spectrum_objects_work(rng: np.random.Generator) -> None:
    """A spectrum class with __eq__ but no __hash__ is used without caching."""

    class Flat:
        __hash__ = None  # type: ignore[assignment]

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Flat)

        def __call__(self, ell: np.ndarray) -> np.ndarray:
            return np.full(np.shape(ell), 1e-10)

    assert gaussian_field(32, PIXEL, Flat(), rng).shape == (32, 32)
    assert lognormal_field(32, PIXEL, Flat(), rng, shift=0.05).shape == (32, 32)


def test_too_small_lognormal_shift_is_rejected(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """A shift below the field's scale makes ξ_κ/λ² ≤ −1: AnalysisError asks for a larger shift."""

    def anticorrelated(ell: np.ndarray) -> np.ndarray:
        return np.where((ell > 2000) & (ell < 2100), 1e-6, 0.0)

    with pytest.raises(AnalysisError, match="too small for this spectrum") as info:
        lognormal_field(64, PIXEL, anticorrelated, rng, shift=1e-4)
    assert info.value.value == 1e-4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_pixels": 4}, "too small"),
        ({"n_pixels": 64.0}, "must be an integer"),
        ({"pixel_size_arcmin": -1.0}, "pixel_size_arcmin"),
        ({"n_fields": 0}, "n_fields"),
    ],
)
def test_bad_field_arguments_are_rejected(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator, kwargs: dict, message: str
) -> None:
    """Bad sizes, pixel scales and counts raise AnalysisError naming the argument."""
    arguments = {"n_pixels": 64, "pixel_size_arcmin": 1.0, "n_fields": None, **kwargs}
    with pytest.raises(AnalysisError, match=message):
        gaussian_field(
            arguments["n_pixels"],
            arguments["pixel_size_arcmin"],
            spectrum,
            rng,
            n_fields=arguments["n_fields"],
        )


def test_spectrum_returning_negative_power_is_rejected(rng: np.random.Generator) -> None:
    """A spectrum with C(ℓ) < 0 raises AnalysisError before any field is drawn."""
    with pytest.raises(AnalysisError, match="negative C"):
        gaussian_field(32, PIXEL, lambda ell: -np.ones_like(ell), rng)


def test_non_positive_shift_is_rejected(
    spectrum: HalofitConvergenceSpectrum, rng: np.random.Generator
) -> None:
    """shift must be > 0."""
    with pytest.raises(AnalysisError, match="shift must be > 0"):
        lognormal_field(32, PIXEL, spectrum, rng, shift=-0.05)


def test_pixel_variance_decreases_with_coarser_pixels(spectrum: HalofitConvergenceSpectrum) -> None:
    """Coarser pixels resolve fewer modes: σ0 on 4′ pixels < σ0 on 1′ pixels (same area)."""
    fine = spectral_moments_on_grid(256, 1.0, spectrum).sigma0
    coarse = spectral_moments_on_grid(64, 4.0, spectrum).sigma0
    assert coarse < fine
    assert math.isfinite(fine)
