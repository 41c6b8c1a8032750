"""One-point PDF of a map's signal-to-noise ν = κ/σ in equal-width bins.

``pdf[b] = N_b / (N Δν)``: the fraction of all N pixels falling in bin b divided by the bin
width, so it integrates to the fraction of pixels inside the binned range (1 − tails). For a
Gaussian map of standard deviation σ it averages to the binned standard normal density
(:func:`lensing_ssc.analysis.theory.gaussian_pdf_binned`). Counted by :mod:`.map_statistics`.
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from lensing_ssc.analysis.statistics.map_statistics import map_statistics

__all__ = ["pdf"]


def pdf(kappa: Any, nu_edges: npt.ArrayLike, sigma: Any = 1.0) -> Any:
    """Return the binned PDF of ν = κ/σ over all pixels of ``kappa``.

    Args:
        kappa: ``(n, n)`` map, or a stack ``(b, n, n)`` (then one PDF per map); NumPy, CuPy
            or any array-API array.
        nu_edges: Equal-width ν bin edges, e.g. ``numpy.linspace(-4, 4, 17)``.
        sigma: The ν normalisation (1 if ``kappa`` already is ν); one per map of a stack.

    Example:
        >>> import numpy as np
        >>> values = np.tile([0.1, 0.2, 0.3, 1.5], (8, 2))  # 8 × 8: three quarters below 1
        >>> pdf(values, [0.0, 1.0, 2.0]).tolist()
        [0.75, 0.25]
    """
    return map_statistics(kappa, 1.0, nu_edges, sigma, names=("pdf",))["pdf"]
