"""Minkowski functionals V0, V1, V2 of excursion sets {ν > ν_t} of a periodic 2-D map.

Definitions (Mecke, Buchert & Wagner 1994; Matsubara 2003; Kratochvil et al. 2012), with A
the patch area: V0 = area fraction above the threshold, V1 = (1/4A) × boundary length,
V2 = (1/2πA) × ∫ boundary curvature = Euler characteristic per area. Estimator
(Lim & Simon 2012; Kratochvil et al. 2012) with a box "δ-function" of the bin width Δν:

    V0(ν_c) = (1/N) #{pixels with ν > ν_c}                      at the bin centre ν_c
    V1(b)   = 1/(4 A Δν) Σ_{ν ∈ b} A_pix |∇ν|                   averaged over bin b
    V2(b)   = 1/(2π A Δν) Σ_{ν ∈ b} A_pix (2 ν_x ν_y ν_xy − ν_x² ν_yy − ν_y² ν_xx) / |∇ν|²

By the coarea formula V1(b) and V2(b) are exactly the bin averages of V1(ν) and V2(ν).
Derivatives are central differences (periodic); V1 is in arcmin⁻¹ and V2 in arcmin⁻².
Finite differences slightly underestimate gradients of maps smoothed over fewer than ~3
pixels: smooth over ≥ 2 pixels and compare with theory in the same pixelisation.
The Gaussian predictions are in :mod:`lensing_ssc.analysis.theory`.
"""

from __future__ import annotations

import math

import numpy as np

from lensing_ssc.analysis._validation import check_patch, check_pixel_size, check_positive
from lensing_ssc.analysis.statistics._nu_bins import NuBins, nu_bins
from lensing_ssc.analysis.statistics.peaks import wrap_pad

__all__ = ["derivative_weights", "minkowski_from_sums", "minkowski_functionals"]


def derivative_weights(
    padded: np.ndarray, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-pixel V1 and V2 integrands for interior rows ``start:stop``, unscaled.

    With d_x = κ(x+1) − κ(x−1) etc. (pixel units), returns |d| = √(d_x² + d_y²), which is
    2Δ|∇κ|, and (d_x d_y d_xy / 2 − d_x² d_yy − d_y² d_xx) / |d|², which is Δ² times the
    V2 integrand; :func:`minkowski_from_sums` applies the factors.
    """
    stop = padded.shape[0] - 2 if stop is None else stop
    s = padded[start : stop + 2]
    centre = s[1:-1, 1:-1]
    east, west = s[1:-1, 2:], s[1:-1, :-2]
    south, north = s[2:, 1:-1], s[:-2, 1:-1]
    dx = east - west
    dy = south - north
    twice = 2.0 * centre
    dxx = east + west
    dxx -= twice
    dyy = south + north
    dyy -= twice
    dxy = s[2:, 2:] - s[2:, :-2]
    dxy -= s[:-2, 2:]
    dxy += s[:-2, :-2]
    dxy *= 0.5
    dx2 = dx * dx
    dy2 = dy * dy
    numerator = dx * dy
    numerator *= dxy
    dx2 *= dyy
    numerator -= dx2
    dy2 *= dxx
    numerator -= dy2
    grad2 = dx * dx
    grad2 += dy * dy
    np.maximum(grad2, np.finfo(float).tiny, out=grad2)
    numerator /= grad2
    return np.sqrt(grad2), numerator


def minkowski_from_sums(
    half_counts: np.ndarray,
    v1_half: np.ndarray,
    v2_half: np.ndarray,
    bins: NuBins,
    n_pixels: int,
    pixel_size_arcmin: float,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn half-bin sums of 1, |d| and the curvature term into (V0, V1, V2) per bin."""
    v0 = bins.above_centers(half_counts) / n_pixels
    v1 = bins.per_bin(v1_half) / (2.0 * pixel_size_arcmin * sigma) / (4.0 * n_pixels * bins.width)
    v2 = (
        bins.per_bin(v2_half)
        / (pixel_size_arcmin**2 * sigma)
        / (2.0 * math.pi * n_pixels * bins.width)
    )
    return v0, v1, v2


def minkowski_functionals(
    kappa: np.ndarray, pixel_size_arcmin: float, nu_edges: np.ndarray, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (V0, V1, V2) of a periodic map in equal-width bins of ν = κ/σ.

    Args:
        kappa: ``(n, n)`` map, usually smoothed over a few pixels.
        pixel_size_arcmin: Pixel side in arcminutes (V1 comes out in arcmin⁻¹, V2 in arcmin⁻²).
        nu_edges: Equal-width ν bin edges.
        sigma: The map's ν normalisation (1 if ``kappa`` already is ν).

    Example:
        >>> x = np.arange(64) * 2 * np.pi / 64
        >>> waves = np.cos(x)[:, None] + np.cos(x)[None, :]
        >>> v0, v1, v2 = minkowski_functionals(waves, 1.0, np.linspace(-2, 2, 5))
        >>> round(float(v0[2]), 2)  # area fraction where cos x + cos y > 0.5
        0.31
    """
    array = check_patch(kappa, name="map")
    pixel = check_pixel_size(pixel_size_arcmin)
    scale = check_positive(sigma, name="sigma", hint="give the ν normalisation σ > 0")
    bins = nu_bins(nu_edges)
    index = bins.half_index(array, scale)
    grad, curvature = derivative_weights(wrap_pad(array))
    counts = np.bincount(index, minlength=bins.n_half).astype(float)
    v1_half = np.bincount(index, weights=grad.ravel(), minlength=bins.n_half)
    v2_half = np.bincount(index, weights=curvature.ravel(), minlength=bins.n_half)
    return minkowski_from_sums(counts, v1_half, v2_half, bins, array.size, pixel, scale)
