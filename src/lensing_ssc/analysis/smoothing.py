"""Gaussian smoothing of flat patches in Fourier space.

The kernel is a 2-D Gaussian of standard deviation σ_s (``smoothing_arcmin``):
W(θ) = exp(−θ²/2σ_s²) / (2π σ_s²), whose transform is W(ℓ) = exp(−ℓ² σ_s²/2). (Papers that
write exp(−θ²/θ_G²) use θ_G = √2 σ_s.) Smoothing multiplies the patch's rfft2 by W(ℓ), so
the patch is treated as periodic: features within ~3σ_s of an edge feel the opposite edge.
Patches may be stacked ``(b, n, n)`` and of any array namespace (NumPy, CuPy, ...); the
window is computed once per geometry with NumPy and copied once to the patches' device.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from lensing_ssc.analysis._arrays import array_device, constant, irfft2, namespace, rfft2
from lensing_ssc.analysis._grid import ARCMIN, rfft_ell, rfft_mode_weights
from lensing_ssc.analysis._validation import check_patch_stack, check_pixel_size
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["check_smoothing", "gaussian_smooth", "gaussian_window", "smoothed_white_noise_sigma"]


def check_smoothing(smoothing_arcmin: float) -> float:
    """Return ``smoothing_arcmin`` as a float ``≥ 0`` or raise ``AnalysisError``."""
    try:
        value = float(smoothing_arcmin)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            f"smoothing scale must be a number, got {smoothing_arcmin!r}",
            value=smoothing_arcmin,
            hint="give σ_s in arcmin, e.g. 2.0",
        ) from exc
    if not math.isfinite(value) or value < 0:
        raise AnalysisError(
            f"smoothing scale must be ≥ 0 arcmin, got {smoothing_arcmin!r}",
            value=smoothing_arcmin,
            hint="give σ_s in arcmin, e.g. 2.0; 0 for none",
        )
    return value


@lru_cache(maxsize=64)
def _window(n: int, pixel: float, smoothing: float) -> np.ndarray:
    ell = rfft_ell(n, pixel)
    window = np.exp(-0.5 * (ell * smoothing * ARCMIN) ** 2)
    window.setflags(write=False)
    return window


def gaussian_window(n_pixels: int, pixel_size_arcmin: float, smoothing_arcmin: float) -> np.ndarray:
    """Return W(ℓ) = exp(−ℓ²σ_s²/2) on the rfft2 grid of an ``n_pixels``-wide patch (read-only)."""
    return _window(
        int(n_pixels), check_pixel_size(pixel_size_arcmin), check_smoothing(smoothing_arcmin)
    )


def gaussian_smooth(patch: Any, pixel_size_arcmin: float, smoothing_arcmin: float) -> Any:
    """Return ``patch`` convolved (periodically) with a Gaussian of σ_s = ``smoothing_arcmin``.

    Args:
        patch: ``(n, n)`` map or a stack ``(b, n, n)`` of maps, smoothed each on its own;
            NumPy, CuPy or any array-API array, which stays on its device.
        pixel_size_arcmin: Pixel side in arcminutes.
        smoothing_arcmin: σ_s in arcminutes (0: no smoothing).

    Example:
        >>> spike = np.zeros((32, 32)); spike[0, 0] = 1.0
        >>> smooth = gaussian_smooth(spike, 1.0, 2.0)
        >>> round(float(smooth.sum()), 6), bool(smooth.max() < 0.05)
        (1.0, True)
    """
    stack, stacked = check_patch_stack(patch)
    n = stack.shape[-1]
    window = gaussian_window(n, pixel_size_arcmin, smoothing_arcmin)
    xp = namespace(stack)
    smoothed = irfft2(rfft2(stack) * constant(window, xp, array_device(stack)), n)
    return smoothed if stacked else smoothed[0, ...]


def smoothed_white_noise_sigma(
    noise_sigma: float, n_pixels: int, pixel_size_arcmin: float, smoothing_arcmin: float
) -> float:
    """Return the standard deviation of white noise of per-pixel σ after Gaussian smoothing.

    Exact for the patch's grid: σ · (Σ_ℓ W(ℓ)² / n²)^½ over all full-plane modes; for
    σ_s ≫ Δ this tends to σ Δ / (2√π σ_s).
    """
    window = gaussian_window(n_pixels, pixel_size_arcmin, smoothing_arcmin)
    total = float(np.sum(window**2 * rfft_mode_weights(int(n_pixels))[None, :]))
    return float(noise_sigma) * math.sqrt(total) / int(n_pixels)
