"""Binned angular power spectrum of a flat patch.

Convention (continuous Fourier transform approximated on the grid, A = patch area):
κ̃(ℓ) = A_pix · FFT[κ], and ⟨κ̃(ℓ) κ̃*(ℓ')⟩ = (2π)² δ_D(ℓ − ℓ') C(ℓ), so the estimator is

    Ĉ(ℓ_b) = (1/N_b) Σ_{ℓ ∈ b} |κ̃(ℓ)|² / A = (A_pix / n²) · mean_{ℓ ∈ b} |FFT[κ]|²,

averaged over the N_b full-plane modes with ℓ_lo ≤ |ℓ| < ℓ_hi. The patch is treated as
periodic; no window or noise bias is removed (white shape noise adds σ² A_pix). For a
Gaussian field Ĉ(ℓ_b) scatters around the mode average of C with relative standard
deviation √(2/N_b) (N_b counts both ℓ and −ℓ, so N_b/2 independent modes).

Only the modes with |ℓ| < ℓ_max are touched, so this costs far less than the FFT that feeds it.
Patches may come one at a time or stacked ``(b, n, n)``, as NumPy, CuPy or any array-API
arrays: NumPy bins with ``bincount``, other namespaces with the bin-sorted mode lists of
:class:`EllBinning` (the same sums, added in another order).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._arrays import (
    array_device,
    constant,
    is_numpy,
    namespace,
    rfft2,
    segment_sums,
)
from lensing_ssc.analysis._grid import (
    ARCMIN,
    crop_rfft,
    fundamental_ell,
    rfft_ell,
    rfft_mode_weights,
)
from lensing_ssc.analysis._validation import check_patch_stack, check_pixel_size
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "EllBinning",
    "band_average",
    "binned_power_spectrum",
    "ell_binning",
    "log_ell_edges",
    "power_spectrum_from_fourier",
]


def log_ell_edges(ell_min: float, ell_max: float, n_bins: int) -> np.ndarray:
    """Return ``n_bins + 1`` logarithmically spaced multipole bin edges."""
    return np.geomspace(float(ell_min), float(ell_max), int(n_bins) + 1)


@dataclass(frozen=True, eq=False)
class EllBinning:
    """Multipole bins on the Fourier grid of one patch geometry (built by :func:`ell_binning`).

    Attributes:
        n: Pixels on a side of the patch.
        m: Side of the cropped rfft grid that holds every mode below the last edge.
        edges: Bin edges (inverse radians).
        index: For each cropped rfft mode, its bin (``len(edges) - 1`` for "no bin").
        weights: Full-plane modes each rfft mode stands for (1 or 2), flattened like ``index``.
        n_modes: Full-plane modes per bin.
        ell_mean: Mode-averaged |ℓ| per bin (the x-value to plot against).
        order: The modes of each bin, bin after bin (positions in ``index``).
        bounds: Where each bin's modes start in ``order`` (``len(edges)`` offsets).
    """

    n: int
    m: int
    edges: np.ndarray
    index: np.ndarray
    weights: np.ndarray
    n_modes: np.ndarray
    ell_mean: np.ndarray
    order: np.ndarray
    bounds: np.ndarray

    def bin_average(self, values: Any) -> Any:
        """Average ``values`` on the cropped rfft grid over the full-plane modes of each bin.

        ``values`` is ``(..., m, m//2 + 1)`` of any array namespace; the result is
        ``(..., n_bins)`` in the same namespace.
        """
        n_bins = self.n_modes.size
        if type(values) is np.ndarray and values.ndim == 2:  # one patch's grid
            sums = np.bincount(
                self.index, weights=self.weights * values.ravel(), minlength=n_bins + 1
            )
            return sums[:n_bins] / self.n_modes
        xp = namespace(values)
        lead = tuple(values.shape[:-2])
        if is_numpy(xp):
            rows = values.reshape(-1, self.index.size)
            count = rows.shape[0]
            # Rows after the first are binned with their bins shifted past the first's.
            index = (
                self.index if count == 1 else self.index + np.arange(count)[:, None] * (n_bins + 1)
            )
            sums = np.bincount(
                index.ravel(), weights=(self.weights * rows).ravel(), minlength=count * (n_bins + 1)
            ).reshape(count, n_bins + 1)
            return (sums[:, :n_bins] / self.n_modes).reshape(*lead, n_bins)
        device = array_device(values)
        weighted = xp.reshape(values, (*lead, self.index.size)) * constant(self.weights, xp, device)
        sums = segment_sums(weighted, self.order, self.bounds)
        return sums / constant(self.n_modes, xp, device)


def _check_edges(edges: np.ndarray) -> None:
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)):
        raise AnalysisError(
            "ℓ bin edges must be a 1-D array of at least two finite numbers",
            value=edges.tolist(),
            hint="e.g. log_ell_edges(300, 3000, 8)",
        )
    if edges[0] <= 0 or np.any(np.diff(edges) <= 0):
        raise AnalysisError(
            "ℓ bin edges must be positive and strictly increasing",
            value=edges.tolist(),
            hint="e.g. log_ell_edges(300, 3000, 8)",
        )


@lru_cache(maxsize=64)
def _binning(n: int, pixel: float, edges_key: tuple[float, ...]) -> EllBinning:
    edges = np.array(edges_key)
    _check_edges(edges)
    nyquist = math.pi / (pixel * ARCMIN)
    if edges[-1] > nyquist * (1.0 + 1e-12):
        raise AnalysisError(
            f"ℓ_max={edges[-1]:g} is above the Nyquist multipole {nyquist:.0f} of "
            f"{pixel:g}-arcmin pixels",
            value=float(edges[-1]),
            hint="lower ell_max or use smaller pixels",
        )
    ell_f = fundamental_ell(n, pixel)
    m = min(n, 2 * (int(edges[-1] / ell_f) + 2))
    ell = rfft_ell(n, pixel, m)
    index = np.searchsorted(edges, ell.ravel(), side="right") - 1
    n_bins = edges.size - 1
    index[(index < 0) | (index >= n_bins)] = n_bins
    weights = np.broadcast_to(rfft_mode_weights(n, m)[None, :], ell.shape).ravel().copy()
    n_modes = np.bincount(index, weights=weights, minlength=n_bins + 1)[:n_bins]
    empty = np.flatnonzero(n_modes == 0)
    if empty.size:
        lo, hi = edges[empty[0]], edges[empty[0] + 1]
        raise AnalysisError(
            f"ℓ bin [{lo:.4g}, {hi:.4g}) holds no Fourier mode of a {n}-pixel patch "
            f"(fundamental ℓ = {ell_f:.4g})",
            value=(float(lo), float(hi)),
            hint="use fewer or wider bins, a larger ell_min, or larger patches",
        )
    ell_sum = np.bincount(index, weights=weights * ell.ravel(), minlength=n_bins + 1)[:n_bins]
    order = np.argsort(index, kind="stable")
    bounds = np.searchsorted(index[order], np.arange(n_bins + 1))
    order = order[: bounds[-1]]
    mean = ell_sum / n_modes
    for array in (edges, index, weights, n_modes, order, bounds, mean):
        array.setflags(write=False)
    return EllBinning(
        n=n,
        m=m,
        edges=edges,
        index=index,
        weights=weights,
        n_modes=n_modes,
        ell_mean=mean,
        order=order,
        bounds=bounds,
    )


def ell_binning(n: int, pixel_size_arcmin: float, ell_edges: npt.ArrayLike) -> EllBinning:
    """Return the (cached) multipole binning of an ``n``-pixel patch.

    Raises ``AnalysisError`` for unsorted edges, edges above the Nyquist multipole, or a bin
    without any Fourier mode of this patch.
    """
    pixel = check_pixel_size(pixel_size_arcmin)
    edges = np.asarray(ell_edges, dtype=float)
    if edges.ndim != 1:
        _check_edges(edges)
    return _binning(int(n), pixel, tuple(float(e) for e in edges))


def power_spectrum_from_fourier(kappa_k: Any, binning: EllBinning, pixel_size_arcmin: float) -> Any:
    """Return Ĉ(ℓ_b) from a patch's full ``rfft2`` (shape ``(..., n, n//2 + 1)``, any namespace).

    A stack of transforms gives one spectrum per patch, ``(..., n_bins)``.
    """
    cropped = crop_rfft(kappa_k, binning.n, binning.m)
    if type(cropped) is np.ndarray:
        power = cropped.real**2 + cropped.imag**2
    else:
        xp = namespace(cropped)
        power = xp.real(cropped) ** 2 + xp.imag(cropped) ** 2
    pixel_area = (pixel_size_arcmin * ARCMIN) ** 2
    return binning.bin_average(power) * pixel_area / binning.n**2


def binned_power_spectrum(patch: Any, pixel_size_arcmin: float, ell_edges: npt.ArrayLike) -> Any:
    """Return the binned power spectrum Ĉ(ℓ_b) of a square periodic patch.

    Args:
        patch: ``(n, n)`` convergence map, or a stack ``(b, n, n)`` (then ``(b, n_bins)``);
            NumPy, CuPy or any array-API array, which stays on its device.
        pixel_size_arcmin: Pixel side in arcminutes.
        ell_edges: Bin edges in ℓ (inverse radians), e.g. ``log_ell_edges(300, 3000, 8)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> white = rng.normal(0.0, 0.01, (128, 128))
        >>> cl = binned_power_spectrum(white, 1.0, log_ell_edges(300, 3000, 4))
        >>> bool(np.allclose(cl, 0.01**2 * (ARCMIN**2), rtol=0.2))
        True
    """
    stack, stacked = check_patch_stack(patch)
    pixel = check_pixel_size(pixel_size_arcmin)
    binning = ell_binning(stack.shape[-1], pixel, ell_edges)
    spectra = power_spectrum_from_fourier(rfft2(stack), binning, pixel)
    return spectra if stacked else spectra[0, ...]


def band_average(
    binning: EllBinning, pixel_size_arcmin: float, function: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Average ``function(|ℓ|)`` over each bin's modes: the expectation of Ĉ for C = function."""
    ell = rfft_ell(binning.n, pixel_size_arcmin, binning.m)
    return binning.bin_average(np.asarray(function(ell), dtype=float))
