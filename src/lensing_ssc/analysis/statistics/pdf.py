"""One-point PDF of a map's signal-to-noise ν = κ/σ in equal-width bins.

``pdf[b] = N_b / (N Δν)``: the fraction of all N pixels falling in bin b divided by the bin
width, so it integrates to the fraction of pixels inside the binned range (1 − tails). For a
Gaussian map of standard deviation σ it averages to the binned standard normal density
(:func:`lensing_ssc.analysis.theory.gaussian_pdf_binned`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._validation import check_patch, check_positive
from lensing_ssc.analysis.statistics._nu_bins import nu_bins

__all__ = ["pdf"]


def pdf(kappa: np.ndarray, nu_edges: npt.ArrayLike, sigma: float = 1.0) -> np.ndarray:
    """Return the binned PDF of ν = κ/σ over all pixels of ``kappa``.

    Args:
        kappa: ``(n, n)`` map.
        nu_edges: Equal-width ν bin edges, e.g. ``numpy.linspace(-4, 4, 17)``.
        sigma: The ν normalisation (1 if ``kappa`` already is ν).

    Example:
        >>> values = np.tile([0.1, 0.2, 0.3, 1.5], (8, 2))  # 8 × 8: three quarters below 1
        >>> pdf(values, [0.0, 1.0, 2.0]).tolist()
        [0.75, 0.25]
    """
    array = check_patch(kappa, name="map")
    scale = check_positive(sigma, name="sigma", hint="give the ν normalisation σ > 0")
    bins = nu_bins(nu_edges)
    half = np.bincount(bins.half_index(array, scale), minlength=bins.n_half)
    return bins.per_bin(half) / (array.size * bins.width)
