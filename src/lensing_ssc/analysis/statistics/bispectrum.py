"""Binned bispectrum of a flat patch in equilateral, isosceles and squeezed configurations.

Estimator (the "FFT-shell" method: Scoccimarro 2015; Jung et al. 2022). For a band b let
I_b(x) be the inverse FFT of κ's Fourier modes with |ℓ| in b, and N_b(x) that of the band's
indicator. Then Σ_x I_1 I_2 I_3 sums κ̃(ℓ1) κ̃(ℓ2) κ̃(ℓ3) over all closed triangles
ℓ1 + ℓ2 + ℓ3 = 0 with sides in the three bands, Σ_x N_1 N_2 N_3 counts those triangles, and

    B̂(b1, b2, b3) = (A_pix² / n²) · Σ_x I_1 I_2 I_3 / Σ_x N_1 N_2 N_3,

for the convention ⟨κ̃(ℓ1) κ̃(ℓ2) κ̃(ℓ3)⟩ = (2π)² δ_D(ℓ1 + ℓ2 + ℓ3) B (units: rad⁴).

Configurations, for each bin b = [ℓ_lo, ℓ_hi) of the bispectrum edges:

* ``equilateral``: all three sides in b;
* ``isosceles``: two sides in b, the third in [ρ ℓ_lo, ρ ℓ_hi) (ρ = ``isosceles_ratio``);
* ``squeezed``: two sides in b, the third in the first (lowest-ℓ) bin.

Every band lies below ℓ_max, so the band maps are computed on an m × m grid cropped from the
patch's Fourier grid with m > 3 ℓ_max / ℓ_f: no triangle aliases, and the cost is a few small
FFTs per band instead of full-size ones. The triangle counts depend only on the geometry and
are cached. A Gaussian field has B = 0; the estimator is unbiased, so its mean over
realisations is consistent with zero.

Patches may come one at a time or stacked ``(b, n, n)``, as NumPy, CuPy or any array-API
arrays; the plan's masks and counts are copied once to the arrays' device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._arrays import (
    array_device,
    constant,
    irfft2,
    namespace,
    rfft2,
)
from lensing_ssc.analysis._grid import (
    ARCMIN,
    crop_rfft,
    fft_friendly_size,
    fundamental_ell,
    rfft_ell,
)
from lensing_ssc.analysis._validation import check_patch_stack, check_pixel_size
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "CONFIGURATIONS",
    "BispectrumPlan",
    "bispectra_from_fourier",
    "bispectrum",
    "bispectrum_plan",
]

CONFIGURATIONS = ("equilateral", "isosceles", "squeezed")
"""Triangle configurations, in the order results are reported."""


@dataclass(frozen=True, eq=False)
class BispectrumPlan:
    """Band masks and triangle counts for one patch geometry (built by :func:`bispectrum_plan`).

    Attributes:
        n: Pixels on a side of the patch.
        m: Side of the cropped grid on which band maps are computed.
        edges: Bispectrum bin edges (inverse radians).
        isosceles_ratio: ρ, the third side of isosceles triangles relative to the other two.
        side_masks: ``(n_bins, m, m//2+1)`` indicator of each band b on the cropped grid.
        third_masks: The same for the isosceles third sides [ρ ℓ_lo, ρ ℓ_hi).
        normalisation: Per configuration, Σ_x N_1 N_2 N_3 for each bin.
        triangles: Per configuration, the number of closed triangles in each bin.
    """

    n: int
    m: int
    edges: np.ndarray
    isosceles_ratio: float
    side_masks: np.ndarray
    third_masks: np.ndarray
    normalisation: dict[str, np.ndarray]
    triangles: dict[str, np.ndarray]


def _band_maps(cropped: Any, masks: np.ndarray, m: int) -> Any:
    """``(..., bands, m, m)`` maps of each band of ``cropped`` (``(..., m, m//2 + 1)``)."""
    if type(cropped) is not np.ndarray:
        masks = constant(masks, namespace(cropped), array_device(cropped))
    return irfft2(cropped[..., None, :, :] * masks, m)


def _triple_sums(sides: Any, thirds: Any | None, configurations: Sequence[str]) -> dict[str, Any]:
    """Σ_x of the products of three band maps per bin (last axis), for each configuration."""
    xp = None if type(sides) is np.ndarray else namespace(sides)
    squared = sides * sides
    # The squeezed triangles' third side is in the first band, for every bin.
    partners = {"equilateral": sides, "isosceles": thirds, "squeezed": sides[..., 0, :, :]}
    sums: dict[str, Any] = {}
    for name in configurations:
        partner = partners[name]
        if partner is None:
            continue
        if xp is None:  # NumPy
            pattern = "...ij" if name == "squeezed" else "...bij"
            sums[name] = np.einsum(f"...bij,{pattern}->...b", squared, partner)
        elif name == "squeezed":
            sums[name] = xp.sum(squared * partner[..., None, :, :], axis=(-2, -1))
        else:
            sums[name] = xp.sum(squared * partner, axis=(-2, -1))
    return sums


@lru_cache(maxsize=32)
def _plan(n: int, pixel: float, edges_key: tuple[float, ...], ratio: float) -> BispectrumPlan:
    edges = np.array(edges_key)
    if edges.ndim != 1 or edges.size < 2 or edges[0] <= 0 or np.any(np.diff(edges) <= 0):
        raise AnalysisError(
            "bispectrum ℓ edges must be positive and strictly increasing",
            value=edges.tolist(),
            hint="e.g. log_ell_edges(300, 3000, 6)",
        )
    if not (math.isfinite(ratio) and 0.0 < ratio < 2.0):
        raise AnalysisError(
            f"isosceles_ratio={ratio!r} does not make triangles",
            value=ratio,
            hint="use 0 < isosceles_ratio < 2, e.g. 0.5",
        )
    ell_top = max(edges[-1], ratio * edges[-1])
    nyquist = math.pi / (pixel * ARCMIN)
    if ell_top > nyquist * (1.0 + 1e-12):
        raise AnalysisError(
            f"bispectrum bands reach ℓ={ell_top:g}, above the Nyquist multipole {nyquist:.0f}",
            value=float(ell_top),
            hint="lower ell_max or use smaller pixels",
        )
    k_max = int(ell_top / fundamental_ell(n, pixel)) + 1
    m = fft_friendly_size(3 * k_max + 2, n)
    ell = rfft_ell(n, pixel, m)
    lo, hi = edges[:-1, None, None], edges[1:, None, None]
    side_masks = ((ell >= lo) & (ell < hi)).astype(float)
    third_masks = ((ell >= ratio * lo) & (ell < ratio * hi)).astype(float)
    sums = _triple_sums(
        _band_maps(np.ones(ell.shape), side_masks, m),
        _band_maps(np.ones(ell.shape), third_masks, m),
        CONFIGURATIONS,
    )
    triangles = {name: np.rint(value * float(m) ** 4) for name, value in sums.items()}
    for name in CONFIGURATIONS:
        empty = np.flatnonzero(triangles[name] < 1)
        if empty.size:
            b = int(empty[0])
            raise AnalysisError(
                f"{name} bispectrum bin [{edges[b]:.4g}, {edges[b + 1]:.4g}) has no closed "
                f"triangle on a {n}-pixel patch (fundamental ℓ = {fundamental_ell(n, pixel):.4g})",
                value=(float(edges[b]), float(edges[b + 1])),
                hint="use fewer, wider bispectrum bins, a larger ell_min, or larger patches",
            )
    for array in (edges, side_masks, third_masks, *sums.values(), *triangles.values()):
        array.setflags(write=False)
    return BispectrumPlan(
        n=n,
        m=m,
        edges=edges,
        isosceles_ratio=ratio,
        side_masks=side_masks,
        third_masks=third_masks,
        normalisation=sums,
        triangles=triangles,
    )


def bispectrum_plan(
    n: int, pixel_size_arcmin: float, ell_edges: npt.ArrayLike, isosceles_ratio: float = 0.5
) -> BispectrumPlan:
    """Return the (cached) bispectrum plan of an ``n``-pixel patch.

    Raises ``AnalysisError`` for bad edges or ratio, bands above the Nyquist multipole, or a
    bin with no closed triangle on this patch.
    """
    pixel = check_pixel_size(pixel_size_arcmin)
    edges = tuple(float(e) for e in np.asarray(ell_edges, dtype=float).ravel())
    return _plan(int(n), pixel, edges, float(isosceles_ratio))


def bispectra_from_fourier(
    kappa_k: Any,
    plan: BispectrumPlan,
    pixel_size_arcmin: float,
    configurations: Sequence[str] = CONFIGURATIONS,
) -> dict[str, Any]:
    """Return ``{configuration: B̂ per bin}`` from a patch's full ``rfft2``.

    ``kappa_k`` is ``(..., n, n//2 + 1)`` of any array namespace; a stack of transforms gives
    ``(..., n_bins)`` per configuration, in the same namespace.
    """
    unknown = [name for name in configurations if name not in CONFIGURATIONS]
    if unknown:
        raise AnalysisError(
            f"unknown bispectrum configuration {unknown[0]!r}",
            value=unknown[0],
            hint=f"choose from {', '.join(CONFIGURATIONS)}",
        )
    cropped = crop_rfft(kappa_k, plan.n, plan.m)
    sides = _band_maps(cropped, plan.side_masks, plan.m)
    thirds = (
        _band_maps(cropped, plan.third_masks, plan.m) if "isosceles" in configurations else None
    )
    sums = _triple_sums(sides, thirds, configurations)
    scale = (pixel_size_arcmin * ARCMIN) ** 4 / plan.n**2
    if type(cropped) is np.ndarray:
        return {name: scale * sums[name] / plan.normalisation[name] for name in configurations}
    xp, device = namespace(cropped), array_device(cropped)
    return {
        name: scale * sums[name] / constant(plan.normalisation[name], xp, device)
        for name in configurations
    }


def bispectrum(
    patch: Any,
    pixel_size_arcmin: float,
    ell_edges: npt.ArrayLike,
    configuration: str = "equilateral",
    *,
    isosceles_ratio: float = 0.5,
) -> Any:
    """Return the binned bispectrum B̂ (rad⁴) of a square periodic patch in one configuration.

    Args:
        patch: ``(n, n)`` convergence map, or a stack ``(b, n, n)`` (then ``(b, n_bins)``);
            NumPy, CuPy or any array-API array, which stays on its device.
        pixel_size_arcmin: Pixel side in arcminutes.
        ell_edges: Bin edges of the triangle sides, e.g. ``log_ell_edges(300, 3000, 6)``.
        configuration: ``"equilateral"``, ``"isosceles"`` or ``"squeezed"``.
        isosceles_ratio: ρ for isosceles triangles (third side ρ ℓ).

    Example:
        >>> from lensing_ssc.analysis.statistics.power_spectrum import log_ell_edges
        >>> rng = np.random.default_rng(0)
        >>> b = bispectrum(rng.normal(size=(128, 128)), 2.0, log_ell_edges(300, 3000, 4))
        >>> b.shape
        (4,)
    """
    stack, stacked = check_patch_stack(patch)
    pixel = check_pixel_size(pixel_size_arcmin)
    plan = bispectrum_plan(stack.shape[-1], pixel, ell_edges, isosceles_ratio)
    values = bispectra_from_fourier(rfft2(stack), plan, pixel, (configuration,))[configuration]
    return values if stacked else values[0, ...]
