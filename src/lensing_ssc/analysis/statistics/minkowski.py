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
pixels: smooth over ≥ 2 pixels and compare with theory in the same pixelisation. The
differences are :mod:`._stencils`'s, binned by :mod:`.map_statistics`.
The Gaussian predictions are in :mod:`lensing_ssc.analysis.theory`.
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from lensing_ssc.analysis.statistics._stencils import derivative_weights
from lensing_ssc.analysis.statistics.map_statistics import map_statistics, minkowski_from_sums

__all__ = ["derivative_weights", "minkowski_from_sums", "minkowski_functionals"]


def minkowski_functionals(
    kappa: Any, pixel_size_arcmin: float, nu_edges: npt.ArrayLike, sigma: Any = 1.0
) -> tuple[Any, Any, Any]:
    """Return (V0, V1, V2) of a periodic map in equal-width bins of ν = κ/σ.

    Args:
        kappa: ``(n, n)`` map, usually smoothed over a few pixels, or a stack ``(b, n, n)``
            (then each functional is ``(b, bins)``); NumPy, CuPy or any array-API array.
        pixel_size_arcmin: Pixel side in arcminutes (V1 comes out in arcmin⁻¹, V2 in arcmin⁻²).
        nu_edges: Equal-width ν bin edges.
        sigma: The map's ν normalisation (1 if ``kappa`` already is ν); one per map of a stack.

    Example:
        >>> import numpy as np
        >>> x = np.arange(64) * 2 * np.pi / 64
        >>> waves = np.cos(x)[:, None] + np.cos(x)[None, :]
        >>> v0, v1, v2 = minkowski_functionals(waves, 1.0, np.linspace(-2, 2, 5))
        >>> round(float(v0[2]), 2)  # area fraction where cos x + cos y > 0.5
        0.31
    """
    measured = map_statistics(kappa, pixel_size_arcmin, nu_edges, sigma, names=("v0", "v1", "v2"))
    return measured["v0"], measured["v1"], measured["v2"]
