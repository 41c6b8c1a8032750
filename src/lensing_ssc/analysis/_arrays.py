"""Array namespaces: one estimator code for NumPy, CuPy and any array-API library.

The statistics are written against the Python array API standard through
``array-api-compat``: :func:`namespace` gives the namespace of the arrays a caller passed,
and the estimators call only what the standard (with its ``fft`` extension) defines. What
the standard lacks is here, written with its primitives:

* :func:`binned_sums` — per-row weighted histograms, the ``numpy.bincount`` of the
  standard: a one-hot matrix product, pixels in chunks so the one-hot block stays bounded;
* :func:`segment_sums` — sums over fixed, precomputed groups of columns (ℓ bins);
* :func:`constant` — a read-only NumPy table (a window, a mask, a binning) copied once to
  the device of the arrays it meets, and kept while the table lives;
* :func:`to_numpy` — results back on the host;
* :func:`rfft2`, :func:`irfft2` — the 2-D real FFTs of the last two axes, batched.

On CuPy the arrays' device must be the current one (``with device:``, as
:meth:`~lensing_ssc.analysis.ArrayDevice.activated` does): array-api-compat's CuPy
creation functions ignore ``device=``, and CuPy runs kernels on the current device.

NumPy keeps its fast paths where they give the same numbers (``bincount`` in the map
statistics and the ℓ bins; ``einsum`` in the bispectrum); the tests run every estimator on
NumPy and on ``array_api_strict`` and compare them to 1e-12. Which device runs a pipeline
is :mod:`lensing_ssc.analysis.devices`.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj, is_cupy_array, is_numpy_array
from array_api_compat import device as _device
from array_api_compat import is_numpy_namespace as _is_numpy_namespace

# Imported with this module, not on first use (numpy's lazy default): a pipeline worker forked
# from a process that imported it then starts measuring at once.
from numpy.fft import irfftn, rfftn

__all__ = [
    "array_device",
    "binned_sums",
    "clear_constants",
    "constant",
    "irfft2",
    "is_array",
    "is_numpy",
    "namespace",
    "rfft2",
    "segment_sums",
    "to_numpy",
]

_ONE_HOT_ELEMENTS = 1 << 24
"""Largest one-hot block of :func:`binned_sums` (128 MiB of float64): pixels go in chunks."""


_NUMPY = array_namespace(np.empty(0))  # array-api-compat's NumPy namespace


def namespace(*arrays: Any) -> Any:
    """The array-API namespace of ``arrays`` (NumPy's compatible wrapper for NumPy arrays)."""
    # NumPy first, without array-api-compat's inspection (~2 µs): the CPU path asks ~40
    # times a patch, nearly always about one array.
    if len(arrays) == 1:
        if type(arrays[0]) is np.ndarray:
            return _NUMPY
    elif all(type(array) is np.ndarray for array in arrays):
        return _NUMPY
    return array_namespace(*arrays)


def array_device(values: Any) -> Any:
    """The device ``values`` live on (``"cpu"`` for NumPy arrays)."""
    if type(values) is np.ndarray:
        return "cpu"
    return _device(values)


def is_numpy(xp: Any) -> bool:
    """Whether ``xp`` is NumPy (its own module or array-api-compat's wrapper)."""
    return xp is _NUMPY or xp is np or bool(_is_numpy_namespace(xp))


def is_array(value: Any) -> bool:
    """Whether ``value`` is an array of an array-API library other than NumPy."""
    return bool(is_array_api_obj(value)) and not is_numpy_array(value)


def to_numpy(values: Any) -> np.ndarray:
    """``values`` as a NumPy array on the host (no copy for NumPy arrays)."""
    if is_numpy_array(values):
        return values
    if is_cupy_array(values):
        return values.get()
    return np.from_dlpack(values, device="cpu")


# Device copies by (id of the table, id of the namespace, device). No lock: single dict
# operations are atomic, two threads may at worst both copy a table, and the finalizer that
# drops an entry may run inside any allocation (a lock held there would deadlock).
_constants: dict[tuple[int, int, str], Any] = {}


def constant(table: np.ndarray, xp: Any, device: Any) -> Any:
    """``table`` in namespace ``xp`` on ``device``, copied once while ``table`` lives.

    For NumPy it is ``table`` itself. ``table`` must not change: the estimators pass the
    read-only tables of their cached plans and windows.
    """
    if is_numpy(xp):
        return table
    key = (id(table), id(xp), repr(device))
    found = _constants.get(key)
    if found is None:
        found = _constants.setdefault(key, xp.asarray(table, device=device))
        weakref.finalize(table, _constants.pop, key, None)
    return found


def clear_constants() -> None:
    """Forget every device copy made by :func:`constant` (tests; freeing a GPU)."""
    _constants.clear()


def binned_sums(index: Any, weights: Any, n_bins: int, *, block: int = _ONE_HOT_ELEMENTS) -> Any:
    """Per-row weighted histograms: ``out[r, w, k] = Σ_p weights[r, w, p] [index[r, p] == k]``.

    Args:
        index: ``(rows, P)`` integer bins in ``0 … n_bins − 1``.
        weights: ``(rows, W, P)`` float weights (a row of ones counts).
        n_bins: K, the number of bins.
        block: Most elements of one one-hot block (rows × pixels × K).

    Returns:
        ``(rows, W, K)`` sums, from one-hot matrix products over chunks of pixels; NumPy
        uses ``bincount`` instead (the same sums, added in another order).
    """
    xp = namespace(index, weights)
    rows, n_weights, size = weights.shape
    if is_numpy(xp):
        flat = (index + (np.arange(rows) * n_bins)[:, None]).ravel()
        out = np.empty((rows, n_weights, n_bins))
        for w in range(n_weights):
            sums = np.bincount(flat, weights=weights[:, w, :].ravel(), minlength=rows * n_bins)
            out[:, w, :] = sums.reshape(rows, n_bins)
        return out
    bins = xp.arange(n_bins, dtype=index.dtype, device=array_device(index))
    step = max(1, block // max(1, rows * n_bins))
    total = None
    for start in range(0, size, step):
        stop = min(size, start + step)
        one_hot = xp.astype(index[:, start:stop, None] == bins, weights.dtype)
        part = xp.matmul(weights[:, :, start:stop], one_hot)
        total = part if total is None else total + part
    return total


def segment_sums(values: Any, order: np.ndarray, bounds: np.ndarray) -> Any:
    """Sums over fixed groups of the last axis: group k is ``values[..., order[b_k:b_{k+1}]]``.

    Args:
        values: ``(..., P)`` values.
        order: Column indices sorted by group (a read-only table, see :func:`constant`).
        bounds: ``K + 1`` offsets into ``order``: group k holds ``order[bounds[k]:bounds[k+1]]``.

    Returns:
        ``(..., K)`` group sums.
    """
    xp = namespace(values)
    taken = xp.take(values, constant(order, xp, array_device(values)), axis=-1)
    sums = [xp.sum(taken[..., int(lo) : int(hi)], axis=-1) for lo, hi in itertools.pairwise(bounds)]
    return xp.stack(sums, axis=-1)


def rfft2(values: Any) -> Any:
    """The real FFT over the last two axes (a stack of patches at once)."""
    if type(values) is np.ndarray:
        return rfftn(values, axes=(-2, -1))
    return namespace(values).fft.rfftn(values, axes=(-2, -1))


def irfft2(modes: Any, n: int) -> Any:
    """The inverse of :func:`rfft2` for ``n × n`` maps."""
    if type(modes) is np.ndarray:
        return irfftn(modes, s=(n, n), axes=(-2, -1))
    return namespace(modes).fft.irfftn(modes, s=(n, n), axes=(-2, -1))
