"""Peak and minimum counts of a (smoothed) map in bins of ν.

A peak is a pixel strictly higher than its 8 neighbours, a minimum one strictly lower; the
patch is periodic (as after FFT smoothing), so edge pixels have neighbours across the
border. Both are found with 8 comparisons of shifted views: each comparison of a pixel with
its right, lower or diagonal neighbour also answers the mirrored question for that neighbour.

Counts are raw numbers per patch, binned by height ν = κ/σ; divide by the patch area to
compare with a density such as :func:`lensing_ssc.analysis.theory.gaussian_peak_density`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._validation import check_patch, check_positive
from lensing_ssc.analysis.statistics._nu_bins import nu_bins

__all__ = ["extrema_masks", "minimum_counts", "peak_counts", "wrap_pad"]


def wrap_pad(values: np.ndarray) -> np.ndarray:
    """Return ``values`` with a one-pixel periodic border, shape ``(n + 2, n + 2)``."""
    n0, n1 = values.shape
    padded = np.empty((n0 + 2, n1 + 2), dtype=values.dtype)
    padded[1:-1, 1:-1] = values
    padded[0, 1:-1] = values[-1]
    padded[-1, 1:-1] = values[0]
    padded[:, 0] = padded[:, -2]
    padded[:, -1] = padded[:, 1]
    return padded


def extrema_masks(
    padded: np.ndarray, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return boolean (peak, minimum) masks for interior rows ``start:stop`` of a padded map.

    Args:
        padded: A map with a one-pixel border (see :func:`wrap_pad`).
        start: First interior row to examine.
        stop: One past the last interior row (default: all rows).
    """
    stop = padded.shape[0] - 2 if stop is None else stop
    s = padded[start : stop + 2]
    middle = s[1:-1]
    gt_h = middle[:, :-1] > middle[:, 1:]
    lt_h = middle[:, :-1] < middle[:, 1:]
    gt_v = s[:-1, 1:-1] > s[1:, 1:-1]
    lt_v = s[:-1, 1:-1] < s[1:, 1:-1]
    gt_d = s[:-1, :-1] > s[1:, 1:]
    lt_d = s[:-1, :-1] < s[1:, 1:]
    gt_a = s[:-1, 1:] > s[1:, :-1]
    lt_a = s[:-1, 1:] < s[1:, :-1]
    peaks = gt_h[:, 1:] & lt_h[:, :-1]
    peaks &= gt_v[1:]
    peaks &= lt_v[:-1]
    peaks &= gt_d[1:, 1:]
    peaks &= lt_d[:-1, :-1]
    peaks &= gt_a[1:, :-1]
    peaks &= lt_a[:-1, 1:]
    minima = lt_h[:, 1:] & gt_h[:, :-1]
    minima &= lt_v[1:]
    minima &= gt_v[:-1]
    minima &= lt_d[1:, 1:]
    minima &= gt_d[:-1, :-1]
    minima &= lt_a[1:, :-1]
    minima &= gt_a[:-1, 1:]
    return peaks, minima


def _counts(kappa: np.ndarray, nu_edges: npt.ArrayLike, sigma: float, which: int) -> np.ndarray:
    array = check_patch(kappa, name="map")
    scale = check_positive(sigma, name="sigma", hint="give the ν normalisation σ > 0")
    bins = nu_bins(nu_edges)
    mask = extrema_masks(wrap_pad(array))[which]
    half = np.bincount(bins.half_index(array[mask], scale), minlength=bins.n_half)
    return bins.per_bin(half).astype(float)


def peak_counts(kappa: np.ndarray, nu_edges: npt.ArrayLike, sigma: float = 1.0) -> np.ndarray:
    """Count the peaks of a periodic map in bins of height ν = κ/σ.

    Args:
        kappa: ``(n, n)`` map, usually smoothed.
        nu_edges: Equal-width bin edges in ν.
        sigma: The map's ν normalisation (1 if ``kappa`` already is ν).

    Example:
        >>> bump = np.zeros((16, 16)); bump[5, 5] = 3.0
        >>> peak_counts(bump, np.linspace(-4, 4, 9)).tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    """
    return _counts(kappa, nu_edges, sigma, 0)


def minimum_counts(kappa: np.ndarray, nu_edges: npt.ArrayLike, sigma: float = 1.0) -> np.ndarray:
    """Count the minima of a periodic map in bins of depth ν = κ/σ (see :func:`peak_counts`)."""
    return _counts(kappa, nu_edges, sigma, 1)
