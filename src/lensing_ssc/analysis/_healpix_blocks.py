"""Adding a HEALPix map into RING-ordered outputs block by block, at any ordering and nside.

One operation, :func:`add_affine`: ``out[j] += a_j · m + b_j`` for a map ``m`` of any nside
and either ordering, with ``m`` brought to the outputs' nside and RING order on the way.
It works on blocks of ``block`` pixels, so beyond the outputs and the map it allocates a
few block-sized arrays, never a full-sky temporary: that is what lets a κ map of
nside 8192 be accumulated shell by shell within one map's memory.

Regrading follows ``healpy.ud_grade`` for an intensive quantity such as δ: degrading
averages the 4^k children of each output pixel (their NESTED indices are a contiguous run),
upgrading gives each child its parent's value. Index conversions are healpy's
``ring2nest``/``nest2ring``. The caller, :class:`lensing_ssc.analysis.born.ConvergenceAccumulator`,
decides the coefficients; this module knows nothing of lensing.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

__all__ = ["add_affine", "healpy_module"]

DEFAULT_BLOCK = 1 << 20
"""Pixels per block: 8 MiB of float64, small against any map worth streaming."""


def healpy_module() -> Any:
    """healpy, imported on first use (~0.8 s), or a ModuleNotFoundError naming the extra."""
    try:
        return importlib.import_module("healpy")
    except ImportError:
        raise ModuleNotFoundError(
            'HEALPix shells need healpy and astropy: pip install "lensing-ssc[healpix]"'
        ) from None


def add_affine(
    out: np.ndarray,
    values: np.ndarray,
    scales: np.ndarray,
    offsets: np.ndarray,
    *,
    nside_in: int,
    nest: bool,
    block: int = DEFAULT_BLOCK,
) -> None:
    """Add ``scales[j] · values + offsets[j]`` to each row ``out[j]`` (RING order).

    Args:
        out: ``(n, 12 nside_out²)`` outputs, RING ordered, updated in place.
        values: The map, ``12 nside_in²`` pixels in RING (``nest=False``) or NESTED order.
        scales, offsets: One coefficient pair per row of ``out``.
        nside_in: The map's resolution.
        nest: Whether ``values`` is NESTED.
        block: Pixels handled at once.
    """
    nside_out = round(math.sqrt(out.shape[1] / 12))
    if nside_in == nside_out and not nest:
        _add_same(out, values, scales, offsets, block)
    elif nside_in >= nside_out:
        _add_degraded(out, values, scales, offsets, nside_in, nside_out, nest, block)
    else:
        _add_upgraded(out, values, scales, offsets, nside_in, nside_out, nest, block)


def _add_same(
    out: np.ndarray, values: np.ndarray, scales: np.ndarray, offsets: np.ndarray, block: int
) -> None:
    work = np.empty(min(block, values.size))
    for start in range(0, values.size, block):
        stop = min(start + block, values.size)
        chunk = values[start:stop]
        for j in range(out.shape[0]):
            buffer = work[: stop - start]
            np.multiply(chunk, scales[j], out=buffer, casting="unsafe")
            if offsets[j]:
                buffer += offsets[j]
            out[j, start:stop] += buffer


def _add_degraded(
    out: np.ndarray,
    values: np.ndarray,
    scales: np.ndarray,
    offsets: np.ndarray,
    nside_in: int,
    nside_out: int,
    nest: bool,
    block: int,
) -> None:
    healpy = healpy_module()
    shift = 2 * (nside_in.bit_length() - nside_out.bit_length())
    children = 1 << shift  # input pixels per output pixel
    step = max(children, block - block % children)
    for start in range(0, values.size, step):
        stop = min(start + step, values.size)
        chunk = np.asarray(values[start:stop], dtype=np.float64)
        if nest:
            # A NESTED block aligned on 4^k holds whole families: average them in place.
            parents = np.arange(start >> shift, stop >> shift)
            means = chunk.reshape(-1, children).mean(axis=1)
            target = healpy.nest2ring(nside_out, parents)
            for j in range(out.shape[0]):
                out[j, target] += scales[j] * means + offsets[j]
        else:
            nested = healpy.ring2nest(nside_in, np.arange(start, stop))
            target = healpy.nest2ring(nside_out, nested >> shift)
            for j in range(out.shape[0]):
                np.add.at(out[j], target, (scales[j] * chunk + offsets[j]) / children)


def _add_upgraded(
    out: np.ndarray,
    values: np.ndarray,
    scales: np.ndarray,
    offsets: np.ndarray,
    nside_in: int,
    nside_out: int,
    nest: bool,
    block: int,
) -> None:
    healpy = healpy_module()
    shift = 2 * (nside_out.bit_length() - nside_in.bit_length())
    n_out = out.shape[1]
    for start in range(0, n_out, block):
        stop = min(start + block, n_out)
        parents = healpy.ring2nest(nside_out, np.arange(start, stop)) >> shift
        source = parents if nest else healpy.nest2ring(nside_in, parents)
        chunk = np.asarray(values[source], dtype=np.float64)
        for j in range(out.shape[0]):
            out[j, start:stop] += scales[j] * chunk + offsets[j]
