"""The stencils of the map statistics: a periodic border, extrema masks, finite differences.

Every function takes one map or a stack ``(b, n + 2, n + 2)`` of padded maps of any array
namespace (NumPy, CuPy, ...) and works on interior rows ``start:stop``, so NumPy callers can
walk a large map in cache-sized blocks of rows (:mod:`.map_statistics`). The conventions are
those of :mod:`.peaks` (strict comparison with the 8 neighbours) and :mod:`.minkowski`
(central differences); both modules re-export what they document.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lensing_ssc.analysis._arrays import array_device, is_numpy, namespace

__all__ = ["derivative_weights", "extrema_masks", "wrap_pad"]

_TINY = float(np.finfo(np.float64).tiny)  # the array API's finfo(float64).smallest_normal


def wrap_pad(values: Any) -> Any:
    """Return ``values`` with a one-pixel periodic border, shape ``(..., n + 2, n + 2)``.

    ``values`` is one map ``(n, n)`` or a stack ``(b, n, n)``, of any array namespace.
    """
    xp = namespace(values)
    if not is_numpy(xp):
        rows = xp.concat((values[..., -1:, :], values, values[..., :1, :]), axis=-2)
        return xp.concat((rows[..., -1:], rows, rows[..., :1]), axis=-1)
    *lead, n0, n1 = values.shape
    padded = np.empty((*lead, n0 + 2, n1 + 2), dtype=values.dtype)
    padded[..., 1:-1, 1:-1] = values
    padded[..., 0, 1:-1] = values[..., -1, :]
    padded[..., -1, 1:-1] = values[..., 0, :]
    padded[..., :, 0] = padded[..., :, -2]
    padded[..., :, -1] = padded[..., :, 1]
    return padded


def extrema_masks(padded: Any, start: int = 0, stop: int | None = None) -> tuple[Any, Any]:
    """Return boolean (peak, minimum) masks for interior rows ``start:stop`` of a padded map.

    Args:
        padded: A map, or a stack ``(b, n + 2, n + 2)`` of maps, with a one-pixel border
            (see :func:`wrap_pad`); any array namespace.
        start: First interior row to examine.
        stop: One past the last interior row (default: all rows).
    """
    stop = padded.shape[-2] - 2 if stop is None else stop
    s = padded[..., start : stop + 2, :]
    middle = s[..., 1:-1, :]
    gt_h = middle[..., :-1] > middle[..., 1:]
    lt_h = middle[..., :-1] < middle[..., 1:]
    upper, lower = s[..., :-1, :], s[..., 1:, :]
    gt_v = upper[..., 1:-1] > lower[..., 1:-1]
    lt_v = upper[..., 1:-1] < lower[..., 1:-1]
    gt_d = upper[..., :-1] > lower[..., 1:]
    lt_d = upper[..., :-1] < lower[..., 1:]
    gt_a = upper[..., 1:] > lower[..., :-1]
    lt_a = upper[..., 1:] < lower[..., :-1]
    peaks = gt_h[..., 1:] & lt_h[..., :-1]
    peaks &= gt_v[..., 1:, :]
    peaks &= lt_v[..., :-1, :]
    peaks &= gt_d[..., 1:, 1:]
    peaks &= lt_d[..., :-1, :-1]
    peaks &= gt_a[..., 1:, :-1]
    peaks &= lt_a[..., :-1, 1:]
    minima = lt_h[..., 1:] & gt_h[..., :-1]
    minima &= lt_v[..., 1:, :]
    minima &= gt_v[..., :-1, :]
    minima &= lt_d[..., 1:, 1:]
    minima &= gt_d[..., :-1, :-1]
    minima &= lt_a[..., 1:, :-1]
    minima &= gt_a[..., :-1, 1:]
    return peaks, minima


def derivative_weights(padded: Any, start: int = 0, stop: int | None = None) -> tuple[Any, Any]:
    """Return the per-pixel V1 and V2 integrands for interior rows ``start:stop``, unscaled.

    With d_x = κ(x+1) − κ(x−1) etc. (pixel units), returns |d| = √(d_x² + d_y²), which is
    2Δ|∇κ|, and (d_x d_y d_xy / 2 − d_x² d_yy − d_y² d_xx) / |d|², which is Δ² times the
    V2 integrand; :func:`~.map_statistics.minkowski_from_sums` applies the factors.
    """
    xp = namespace(padded)
    stop = padded.shape[-2] - 2 if stop is None else stop
    s = padded[..., start : stop + 2, :]
    centre = s[..., 1:-1, 1:-1]
    east, west = s[..., 1:-1, 2:], s[..., 1:-1, :-2]
    south, north = s[..., 2:, 1:-1], s[..., :-2, 1:-1]
    dx = east - west
    dy = south - north
    twice = 2.0 * centre
    dxx = east + west
    dxx -= twice
    dyy = south + north
    dyy -= twice
    dxy = s[..., 2:, 2:] - s[..., 2:, :-2]
    dxy -= s[..., :-2, 2:]
    dxy += s[..., :-2, :-2]
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
    if is_numpy(xp):
        np.maximum(grad2, _TINY, out=grad2)
        numerator /= grad2
        return np.sqrt(grad2), numerator
    # Not clip: array-api-compat's clip for CuPy makes the host wait (see _nu_bins).
    grad2 = xp.maximum(grad2, xp.full((), _TINY, dtype=grad2.dtype, device=array_device(grad2)))
    numerator /= grad2
    return xp.sqrt(grad2), numerator
