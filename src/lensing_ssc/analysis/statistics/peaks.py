"""Peak and minimum counts of a (smoothed) map in bins of ν.

A peak is a pixel strictly higher than its 8 neighbours, a minimum one strictly lower; the
patch is periodic (as after FFT smoothing), so edge pixels have neighbours across the
border. Both are found with 8 comparisons of shifted views: each comparison of a pixel with
its right, lower or diagonal neighbour also answers the mirrored question for that neighbour.
Maps may be stacked ``(b, n, n)`` and of any array namespace (NumPy, CuPy, ...); the masks
themselves are :mod:`._stencils`'s, counted by :mod:`.map_statistics`.

Counts are raw numbers per patch, binned by height ν = κ/σ; divide by the patch area to
compare with a density such as :func:`lensing_ssc.analysis.theory.gaussian_peak_density`.
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from lensing_ssc.analysis.statistics._stencils import extrema_masks, wrap_pad
from lensing_ssc.analysis.statistics.map_statistics import map_statistics

__all__ = ["extrema_masks", "minimum_counts", "peak_counts", "wrap_pad"]


def _counts(kappa: Any, nu_edges: npt.ArrayLike, sigma: Any, name: str) -> Any:
    return map_statistics(kappa, 1.0, nu_edges, sigma, names=(name,))[name]


def peak_counts(kappa: Any, nu_edges: npt.ArrayLike, sigma: Any = 1.0) -> Any:
    """Count the peaks of a periodic map in bins of height ν = κ/σ.

    Args:
        kappa: ``(n, n)`` map, usually smoothed, or a stack ``(b, n, n)`` of them (then the
            counts are ``(b, bins)``); NumPy, CuPy or any array-API array.
        nu_edges: Equal-width bin edges in ν.
        sigma: The map's ν normalisation (1 if ``kappa`` already is ν); one per map of a stack.

    Example:
        >>> import numpy as np
        >>> bump = np.zeros((16, 16)); bump[5, 5] = 3.0
        >>> peak_counts(bump, np.linspace(-4, 4, 9)).tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    """
    return _counts(kappa, nu_edges, sigma, "peaks")


def minimum_counts(kappa: Any, nu_edges: npt.ArrayLike, sigma: Any = 1.0) -> Any:
    """Count the minima of a periodic map in bins of depth ν = κ/σ (see :func:`peak_counts`)."""
    return _counts(kappa, nu_edges, sigma, "minima")
