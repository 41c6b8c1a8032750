"""Fourier grids of square flat-sky patches, shared by every estimator in the package.

A patch of ``n × n`` pixels of side ``pixel_size_arcmin`` is treated as periodic; its
multipoles are ``ℓ = ℓ_f · (k_x, k_y)`` with the fundamental ``ℓ_f = 2π / (n Δ)`` (Δ in
radians). Arrays here use numpy's ``rfft2`` layout: rows are ``k_y`` in FFT order, columns
``k_x = 0 … n//2``. Grids are cached per geometry and returned read-only, so estimators
called patch after patch never rebuild them.

Cropping (:func:`crop_rfft`) keeps only the modes with ``|k_x|, |k_y| < m/2``: products of
band-limited maps can then be evaluated on an ``m × m`` grid instead of ``n × n`` (see
:mod:`lensing_ssc.analysis.statistics.bispectrum`). Conventions are described in
``docs/analysis.md``; the estimators themselves live in :mod:`lensing_ssc.analysis.statistics`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from lensing_ssc.analysis._arrays import namespace

__all__ = [
    "ARCMIN",
    "crop_rfft",
    "fft_friendly_size",
    "fundamental_ell",
    "rfft_ell",
    "rfft_mode_weights",
]

ARCMIN = math.pi / (180.0 * 60.0)
"""One arcminute in radians."""


def fundamental_ell(n: int, pixel_size_arcmin: float) -> float:
    """Return the fundamental multipole ``2π / (n Δ)`` of an ``n``-pixel patch side."""
    return 2.0 * math.pi / (n * pixel_size_arcmin * ARCMIN)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@lru_cache(maxsize=64)
def _integer_wavenumbers(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    # Wavenumbers (in units of the fundamental) of an m-row rfft grid cropped from an n-grid.
    ky = np.fft.fftfreq(m, d=1.0 / m)
    kx = np.arange(m // 2 + 1, dtype=float)
    return _frozen(ky), _frozen(kx)


@lru_cache(maxsize=64)
def rfft_ell(n: int, pixel_size_arcmin: float, m: int | None = None) -> np.ndarray:
    """Return ``|ℓ|`` on the rfft2 grid of an ``n × n`` patch, cropped to ``m`` rows if given.

    Args:
        n: Pixels on a side of the patch.
        pixel_size_arcmin: Pixel side in arcminutes.
        m: Size of the cropped grid (even, ``≤ n``); ``None`` means the full grid.

    Example:
        >>> bool(rfft_ell(4, 60.0)[0, 1] == fundamental_ell(4, 60.0))
        True
    """
    m = n if m is None else m
    ky, kx = _integer_wavenumbers(n, m)
    ell = fundamental_ell(n, pixel_size_arcmin) * np.hypot(ky[:, None], kx[None, :])
    return _frozen(ell)


@lru_cache(maxsize=64)
def rfft_mode_weights(n: int, m: int | None = None) -> np.ndarray:
    """Return how many full-plane modes each rfft2 column stands for (1 or 2).

    Column ``k_x = 0`` and, for even ``n``, the Nyquist column ``k_x = n/2`` are their own
    mirror images; every other column also represents its conjugate at ``-k_x``.
    """
    m = n if m is None else m
    _, kx = _integer_wavenumbers(n, m)
    weights = np.full(kx.shape, 2.0)
    weights[kx == 0] = 1.0
    weights[2 * kx == n] = 1.0
    return _frozen(weights)


def crop_rfft(kappa_k: Any, n: int, m: int) -> Any:
    """Keep the modes ``-m/2 ≤ k_y < m/2``, ``0 ≤ k_x ≤ m/2`` of an ``n``-grid rfft2 array.

    Returns ``kappa_k`` itself when ``m == n``; otherwise a new ``(..., m, m//2 + 1)`` array
    of the same array namespace (NumPy, CuPy, ...).
    """
    if m == n:
        return kappa_k
    half = m // 2
    columns = kappa_k[..., : half + 1]
    parts = (columns[..., :half, :], columns[..., n - half :, :])
    if type(kappa_k) is np.ndarray:
        return np.concatenate(parts, axis=-2)
    return namespace(kappa_k).concat(parts, axis=-2)


def fft_friendly_size(minimum: int, n: int) -> int:
    """Return the smallest even 2·3·5-smooth size ``≥ minimum``, capped at ``n``."""
    size = max(2, minimum + (minimum % 2))
    while size < n:
        remainder = size
        for prime in (2, 3, 5):
            while remainder % prime == 0:
                remainder //= prime
        if remainder == 1:
            return size
        size += 2
    return n
