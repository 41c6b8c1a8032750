"""All threshold statistics of one smoothed map in a single, cache-friendly pass.

:func:`map_statistics` returns the same numbers as :func:`~.pdf.pdf`,
:func:`~.peaks.peak_counts`, :func:`~.peaks.minimum_counts` and
:func:`~.minkowski.minkowski_functionals`, but walks the map once in blocks of rows: each
pixel's ν bin is computed once, and the temporaries (comparisons, finite differences) stay
small enough for the CPU cache. This is what :func:`lensing_ssc.analysis.compute_patch_statistics`
calls for every (n_gal, smoothing) setting.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._validation import check_patch, check_pixel_size, check_positive
from lensing_ssc.analysis.statistics._nu_bins import NuBins, nu_bins
from lensing_ssc.analysis.statistics.minkowski import derivative_weights, minkowski_from_sums
from lensing_ssc.analysis.statistics.peaks import extrema_masks, wrap_pad
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["MAP_STATISTICS", "map_statistics", "measure_map_statistics"]

MAP_STATISTICS = ("pdf", "peaks", "minima", "v0", "v1", "v2")
"""Names of the statistics measured on smoothed maps, in reporting order."""

_BLOCK_PIXELS = 1 << 18  # pixels per block of rows: keeps temporaries at ~2 MB


def map_statistics(
    kappa: np.ndarray,
    pixel_size_arcmin: float,
    nu_edges: npt.ArrayLike,
    sigma: float = 1.0,
    names: Collection[str] = MAP_STATISTICS,
) -> dict[str, np.ndarray]:
    """Return the requested ν-binned statistics of a periodic map, keyed by name.

    Args:
        kappa: ``(n, n)`` smoothed map.
        pixel_size_arcmin: Pixel side in arcminutes.
        nu_edges: Equal-width ν bin edges.
        sigma: ν = κ/σ.
        names: Any of ``"pdf"``, ``"peaks"``, ``"minima"``, ``"v0"``, ``"v1"``, ``"v2"``.

    Example:
        >>> rng = np.random.default_rng(3)
        >>> stats = map_statistics(rng.normal(size=(64, 64)), 1.0, np.linspace(-3, 3, 7))
        >>> sorted(stats) == sorted(MAP_STATISTICS)
        True
    """
    array = check_patch(kappa, name="map")
    pixel = check_pixel_size(pixel_size_arcmin)
    scale = check_positive(sigma, name="sigma", hint="give the ν normalisation σ > 0")
    unknown = sorted(set(names) - set(MAP_STATISTICS))
    if unknown:
        raise AnalysisError(
            f"unknown map statistic {unknown[0]!r}",
            value=unknown[0],
            hint=f"choose from {', '.join(MAP_STATISTICS)}",
        )
    bins = nu_bins(nu_edges)
    return measure_map_statistics(array, pixel, bins, scale, set(names))


def measure_map_statistics(
    array: np.ndarray, pixel: float, bins: NuBins, scale: float, names: set[str]
) -> dict[str, np.ndarray]:
    """Do the work of :func:`map_statistics` on inputs that are already validated."""
    n = array.shape[0]
    want_extrema = bool(names & {"peaks", "minima"})
    want_mf = bool(names & {"v1", "v2"})
    padded = wrap_pad(array) if (want_extrema or want_mf) else None
    size = bins.n_half
    counts = np.zeros(size)
    peak_half = np.zeros(size)
    minimum_half = np.zeros(size)
    v1_half = np.zeros(size)
    v2_half = np.zeros(size)
    rows = max(1, _BLOCK_PIXELS // n)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        index = bins.half_index(array[start:stop], scale)
        counts += np.bincount(index, minlength=size)
        if padded is not None and want_extrema:
            peaks, minima = extrema_masks(padded, start, stop)
            peak_half += np.bincount(index[peaks.ravel()], minlength=size)
            minimum_half += np.bincount(index[minima.ravel()], minlength=size)
        if padded is not None and want_mf:
            grad, curvature = derivative_weights(padded, start, stop)
            v1_half += np.bincount(index, weights=grad.ravel(), minlength=size)
            v2_half += np.bincount(index, weights=curvature.ravel(), minlength=size)
    v0, v1, v2 = minkowski_from_sums(counts, v1_half, v2_half, bins, array.size, pixel, scale)
    everything = {
        "pdf": bins.per_bin(counts) / (array.size * bins.width),
        "peaks": bins.per_bin(peak_half),
        "minima": bins.per_bin(minimum_half),
        "v0": v0,
        "v1": v1,
        "v2": v2,
    }
    return {name: everything[name] for name in MAP_STATISTICS if name in names}
