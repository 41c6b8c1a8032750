"""All threshold statistics of smoothed maps in a single, cache-friendly pass.

:func:`map_statistics` returns the same numbers as :func:`~.pdf.pdf`,
:func:`~.peaks.peak_counts`, :func:`~.peaks.minimum_counts` and
:func:`~.minkowski.minkowski_functionals` (which call it), for one map or a stack
``(b, n, n)`` of maps, of any array namespace (NumPy, CuPy, ...): each pixel's ν bin is
computed once, and the extrema masks and finite differences of :mod:`._stencils` are binned
with it. This is what :func:`lensing_ssc.analysis.compute_patch_statistics` calls for every
(n_gal, smoothing) setting.

Two ways to bin, with the same sums (added in another order, equal to ~1e-15):

* NumPy walks the maps in blocks of ~2.6 × 10⁵ pixels (rows of a large map, or several small
  maps at once), so the temporaries (comparisons, differences) stay in the CPU cache, and
  bins them with ``numpy.bincount``;
* every other namespace takes the whole stack at once and bins it with the one-hot matrix
  products of :func:`lensing_ssc.analysis._arrays.binned_sums`: a GPU gets all the work in a
  few large kernels, sized by the caller to its memory.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._arrays import (
    array_device,
    binned_sums,
    is_array,
    namespace,
    to_numpy,
)
from lensing_ssc.analysis._validation import check_patch_stack, check_pixel_size, check_positive
from lensing_ssc.analysis.statistics._nu_bins import NuBins, nu_bins
from lensing_ssc.analysis.statistics._stencils import derivative_weights, extrema_masks, wrap_pad
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["MAP_STATISTICS", "map_statistics", "measure_map_statistics", "minkowski_from_sums"]

MAP_STATISTICS = ("pdf", "peaks", "minima", "v0", "v1", "v2")
"""Names of the statistics measured on smoothed maps, in reporting order."""

_BLOCK_PIXELS = 1 << 18  # pixels per NumPy block: keeps temporaries at ~2 MB

# The sums the statistics need, per half bin: pixels, peaks, minima, |∇ν|, curvature term.
_SUMS = ("count", "peak", "minimum", "gradient", "curvature")


def map_statistics(
    kappa: Any,
    pixel_size_arcmin: float,
    nu_edges: npt.ArrayLike,
    sigma: Any = 1.0,
    names: Collection[str] = MAP_STATISTICS,
) -> dict[str, Any]:
    """Return the requested ν-binned statistics of a periodic map, keyed by name.

    Args:
        kappa: ``(n, n)`` smoothed map, or a stack ``(b, n, n)`` of them (each statistic is
            then ``(b, bins)``); NumPy, CuPy or any array-API array, which stays on its device.
        pixel_size_arcmin: Pixel side in arcminutes.
        nu_edges: Equal-width ν bin edges.
        sigma: ν = κ/σ: one σ, or one per map of a stack.
        names: Any of ``"pdf"``, ``"peaks"``, ``"minima"``, ``"v0"``, ``"v1"``, ``"v2"``.

    Example:
        >>> rng = np.random.default_rng(3)
        >>> stats = map_statistics(rng.normal(size=(64, 64)), 1.0, np.linspace(-3, 3, 7))
        >>> sorted(stats) == sorted(MAP_STATISTICS)
        True
    """
    stack, stacked = check_patch_stack(kappa, name="map")
    pixel = check_pixel_size(pixel_size_arcmin)
    scales = _check_sigma(sigma, stack)
    unknown = sorted(set(names) - set(MAP_STATISTICS))
    if unknown:
        raise AnalysisError(
            f"unknown map statistic {unknown[0]!r}",
            value=unknown[0],
            hint=f"choose from {', '.join(MAP_STATISTICS)}",
        )
    bins = nu_bins(nu_edges)
    if not stacked and type(stack) is np.ndarray:  # one NumPy map: its 2-D path
        return measure_map_statistics(stack[0], pixel, bins, float(scales[0]), set(names))
    measured = measure_map_statistics(stack, pixel, bins, scales, set(names))
    if stacked:
        return measured
    return {name: values[0, ...] for name, values in measured.items()}


def _check_sigma(sigma: Any, stack: Any) -> Any:
    """``sigma`` as a ``(b,)`` array of ``stack``'s namespace, each value finite and > 0."""
    hint = "give the ν normalisation σ > 0"
    xp = namespace(stack)
    rows = stack.shape[0]
    if is_array(sigma) or np.ndim(sigma) > 0:
        host = np.asarray(to_numpy(sigma) if is_array(sigma) else sigma, dtype=float)
        if host.shape != (rows,):
            raise AnalysisError(
                f"sigma must be one number or one per map ({rows}), got shape {host.shape}",
                value=host.shape,
                hint=hint,
            )
        for value in host:
            check_positive(value, name="sigma", hint=hint)
        return xp.asarray(host, device=array_device(stack))
    value = check_positive(sigma, name="sigma", hint=hint)
    return xp.full((rows,), value, dtype=xp.float64, device=array_device(stack))


def measure_map_statistics(
    stack: Any, pixel: float, bins: NuBins, scale: Any, names: set[str]
) -> dict[str, Any]:
    """Do the work of :func:`map_statistics` on inputs that are already validated.

    Args:
        stack: ``(b, n, n)`` float64 maps of any array namespace, or one NumPy map ``(n, n)``.
        pixel: Pixel side in arcminutes.
        bins: The ν bins.
        scale: ``(b,)`` σ of each map, in the namespace of ``stack``, or one float.
        names: The statistics wanted.

    Returns:
        ``{name: (b, bins)}`` in the namespace of ``stack`` (``(bins,)`` for one NumPy map),
        in :data:`MAP_STATISTICS` order.
    """
    wanted = {"count"}
    if names & {"peaks", "minima"}:
        wanted |= {"peak", "minimum"}
    if names & {"v1", "v2"}:
        wanted |= {"gradient", "curvature"}
    if type(stack) is np.ndarray and stack.ndim == 2:
        sums = _map_sums(stack, bins, float(scale), wanted)
    elif type(stack) is np.ndarray:
        if isinstance(scale, (int, float)):
            scale = np.full(stack.shape[0], float(scale))
        sums = _stack_sums(stack, bins, scale, wanted)
    else:
        if isinstance(scale, (int, float)):
            xp, rows = namespace(stack), stack.shape[0]
            scale = xp.full((rows,), float(scale), dtype=xp.float64, device=array_device(stack))
        sums = _array_sums(stack, bins, scale, wanted)
    pixels = stack.shape[-1] ** 2
    found: dict[str, Any] = {}
    if "pdf" in names:
        found["pdf"] = bins.per_bin(sums["count"]) / (pixels * bins.width)
    if "peak" in wanted:
        found["peaks"] = bins.per_bin(sums["peak"])
        found["minima"] = bins.per_bin(sums["minimum"])
    if names & {"v0", "v1", "v2"}:
        if "gradient" not in wanted:  # V0 alone
            sums["gradient"] = sums["curvature"] = sums["count"] * 0.0
        found["v0"], found["v1"], found["v2"] = minkowski_from_sums(
            sums["count"],
            sums["gradient"],
            sums["curvature"],
            bins,
            pixels,
            pixel,
            scale,
        )
    return {name: found[name] for name in MAP_STATISTICS if name in names}


def _map_sums(values: np.ndarray, bins: NuBins, scale: float, wanted: set[str]) -> dict[str, Any]:
    """NumPy's half-bin sums ``(K,)`` of one map ``(n, n)``, in blocks of ~_BLOCK_PIXELS rows."""
    n = values.shape[0]
    size = bins.n_half
    sums = {name: np.zeros(size) for name in _SUMS if name in wanted}
    padded = wrap_pad(values) if wanted & {"peak", "gradient"} else None
    rows = max(1, _BLOCK_PIXELS // n)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        index = bins.half_index(values[start:stop], scale)
        sums["count"] += np.bincount(index, minlength=size)
        if padded is None:
            continue
        if "peak" in wanted:
            peaks, minima = extrema_masks(padded, start, stop)
            sums["peak"] += np.bincount(index[peaks.ravel()], minlength=size)
            sums["minimum"] += np.bincount(index[minima.ravel()], minlength=size)
        if "gradient" in wanted:
            grad, curvature = derivative_weights(padded, start, stop)
            sums["gradient"] += np.bincount(index, weights=grad.ravel(), minlength=size)
            sums["curvature"] += np.bincount(index, weights=curvature.ravel(), minlength=size)
    return sums


def _stack_sums(
    stack: np.ndarray, bins: NuBins, scale: np.ndarray, wanted: set[str]
) -> dict[str, Any]:
    """NumPy's half-bin sums ``(b, K)`` of a stack: small maps in groups of ~_BLOCK_PIXELS
    (each map's bins offset by its row, so one ``bincount`` serves the group), large ones
    map by map."""
    rows, n = stack.shape[0], stack.shape[-1]
    group = _BLOCK_PIXELS // (n * n)
    if group <= 1:
        parts = [
            _map_sums(one, bins, float(sigma), wanted)
            for one, sigma in zip(stack, scale, strict=True)
        ]
        return {name: np.stack([part[name] for part in parts]) for name in parts[0]}
    size = bins.n_half
    sums = {name: np.zeros((rows, size)) for name in _SUMS if name in wanted}
    padded = wrap_pad(stack) if wanted & {"peak", "gradient"} else None
    for first in range(0, rows, group):
        end = min(rows, first + group)
        shape = (end - first, size)
        index = bins.half_index(stack[first:end], scale[first:end])
        flat = (index + np.arange(shape[0])[:, None] * size).ravel()
        length = shape[0] * size
        sums["count"][first:end] += np.bincount(flat, minlength=length).reshape(shape)
        if padded is None:
            continue
        # One map: its 2-D view (numpy's loops over 3-D views cost ~25 % more on 128² maps).
        block = padded[first] if shape[0] == 1 else padded[first:end]
        if "peak" in wanted:
            peaks, minima = extrema_masks(block)
            for name, mask in (("peak", peaks), ("minimum", minima)):
                found = np.bincount(flat[mask.ravel()], minlength=length)
                sums[name][first:end] += found.reshape(shape)
        if "gradient" in wanted:
            grad, curvature = derivative_weights(block)
            for name, weights in (("gradient", grad), ("curvature", curvature)):
                total = np.bincount(flat, weights=weights.ravel(), minlength=length)
                sums[name][first:end] += total.reshape(shape)
    return sums


def _array_sums(stack: Any, bins: NuBins, scale: Any, wanted: set[str]) -> dict[str, Any]:
    xp = namespace(stack)
    rows = stack.shape[0]
    index = bins.half_index(stack, scale)
    columns = {"count": xp.ones(index.shape, dtype=xp.float64, device=array_device(stack))}
    if wanted & {"peak", "gradient"}:
        padded = wrap_pad(stack)
        if "peak" in wanted:
            peaks, minima = extrema_masks(padded)
            columns["peak"] = xp.astype(xp.reshape(peaks, (rows, -1)), xp.float64)
            columns["minimum"] = xp.astype(xp.reshape(minima, (rows, -1)), xp.float64)
        if "gradient" in wanted:
            grad, curvature = derivative_weights(padded)
            columns["gradient"] = xp.reshape(grad, (rows, -1))
            columns["curvature"] = xp.reshape(curvature, (rows, -1))
    names = list(columns)
    binned = binned_sums(index, xp.stack([columns[name] for name in names], axis=1), bins.n_half)
    return {name: binned[:, i, :] for i, name in enumerate(names)}


def minkowski_from_sums(
    half_counts: Any,
    v1_half: Any,
    v2_half: Any,
    bins: NuBins,
    n_pixels: int,
    pixel_size_arcmin: float,
    sigma: Any,
) -> tuple[Any, Any, Any]:
    """Turn half-bin sums of 1, |d| and the curvature term into (V0, V1, V2) per bin.

    The sums are ``(..., 2B + 2)`` (one row per map); ``sigma`` is one σ or one per row.
    """
    if not isinstance(sigma, (int, float)):
        sigma = sigma[..., None]
    v0 = bins.above_centers(half_counts) / n_pixels
    v1 = bins.per_bin(v1_half) / (2.0 * pixel_size_arcmin * sigma) / (4.0 * n_pixels * bins.width)
    v2 = (
        bins.per_bin(v2_half)
        / (pixel_size_arcmin**2 * sigma)
        / (2.0 * math.pi * n_pixels * bins.width)
    )
    return v0, v1, v2
