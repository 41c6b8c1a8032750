"""Gaussian galaxy shape noise on convergence patches.

With n_gal galaxies per arcmin² and an intrinsic ellipticity dispersion ε per component
(ε = 0.26 for LSST-like surveys: Chang et al. 2013), each pixel of area A_pix gets
independent Gaussian noise of standard deviation

    σ_pix = ε / √(n_gal · A_pix)        (A_pix in arcmin²),

i.e. white noise of power N = σ_pix² A_pix (A_pix in sr) in the power spectrum. n_gal = 0
means no noise. Smoothing the noise is done with the signal (see :mod:`.smoothing`).
"""

from __future__ import annotations

import math

import numpy as np

from lensing_ssc.analysis._validation import check_patch, check_pixel_size
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["DEFAULT_EPSILON", "add_shape_noise", "check_n_gal", "noise_sigma"]

DEFAULT_EPSILON = 0.26
"""Intrinsic ellipticity dispersion per component used by default."""


def check_n_gal(n_gal: float) -> float:
    """Return ``n_gal`` as a float ``≥ 0`` or raise ``AnalysisError`` naming the value."""
    try:
        value = float(n_gal)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"n_gal must be a number of galaxies per arcmin², got {n_gal!r}",
            value=n_gal,
            hint="use e.g. 30; 0 means no noise",
        ) from exc
    if not math.isfinite(value) or value < 0:
        raise AnalysisError(
            f"n_gal must be ≥ 0 galaxies per arcmin², got {n_gal!r}",
            value=n_gal,
            hint="use e.g. 30; 0 means no noise",
        )
    return value


def _check_epsilon(epsilon: float) -> float:
    try:
        value = float(epsilon)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"epsilon must be a number, got {epsilon!r}",
            value=epsilon,
            hint="use the ellipticity dispersion per component, e.g. 0.26",
        ) from exc
    if not math.isfinite(value) or value <= 0:
        raise AnalysisError(
            f"epsilon must be > 0, got {epsilon!r}",
            value=epsilon,
            hint="use the ellipticity dispersion per component, e.g. 0.26",
        )
    return value


def noise_sigma(n_gal: float, pixel_size_arcmin: float, epsilon: float = DEFAULT_EPSILON) -> float:
    """Return the per-pixel shape-noise standard deviation ε/√(n_gal A_pix); 0 when n_gal = 0.

    Example:
        >>> round(noise_sigma(30, 1.0), 5)
        0.04747
    """
    density = check_n_gal(n_gal)
    pixel = check_pixel_size(pixel_size_arcmin)
    eps = _check_epsilon(epsilon)
    if density == 0.0:
        return 0.0
    return eps / math.sqrt(density * pixel * pixel)


def add_shape_noise(
    patch: np.ndarray,
    pixel_size_arcmin: float,
    n_gal: float,
    rng: np.random.Generator,
    epsilon: float = DEFAULT_EPSILON,
) -> np.ndarray:
    """Return ``patch`` plus Gaussian shape noise for ``n_gal`` galaxies per arcmin².

    Args:
        patch: ``(n, n)`` convergence map (not modified).
        pixel_size_arcmin: Pixel side in arcminutes.
        n_gal: Galaxy density per arcmin²; 0 returns a copy of ``patch``.
        rng: The random generator.
        epsilon: Ellipticity dispersion per component.
    """
    array = check_patch(patch)
    sigma = noise_sigma(n_gal, pixel_size_arcmin, epsilon)
    if sigma == 0.0:
        return array.copy()
    return array + rng.normal(0.0, sigma, array.shape)
