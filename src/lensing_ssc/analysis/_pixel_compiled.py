"""The compiled (numba) particle-binning loop of :mod:`._pixel_kernels`, imported on first use.

The same arithmetic as :func:`._pixel_kernels._ring_pixels_numpy`, in blocks of 4096
particles, in two passes:

1. :func:`_pixels` — each particle's distance, first guess of its shell, and RING pixel,
   written without branches (both the equatorial and the polar-cap pixel are computed and
   one is selected), so that LLVM turns the loop into SIMD code: 5 ns a particle where the
   branchy scalar loop took 30 (measured at nside 2048). The arctangent is this module's
   own series (:func:`_atan_series`, evaluated by Estrin's scheme), as libm's ``atan2``
   is a call that cannot be vectorised.
2. the increments, one particle at a time, with the shell guess corrected against the
   edges (no step for equal shells). A large map fits in no cache, so each increment is a
   miss; done apart from the arithmetic, the misses of independent increments overlap.

:func:`._pixel_kernels.count_particles` chooses this loop when numba is installed.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

__all__ = ["count_particles", "ring_pixels"]

_SCATTER = 4096  # particles whose pixels are computed, then counted, at a time
_POLAR_SIN = 0.99  # as in _pixel_kernels: sin θ from x, y beyond |cos θ| = 0.99


def _atan_series() -> np.ndarray:
    """Monomial coefficients in s = t² of atan(t)/t for |t| ≤ tan(π/8), lowest first.

    The compiled loop's arctangent: libm's ``atan2`` is a call (20-40 ns) that keeps the
    loop from being vectorised. Interpolation at 15 Chebyshev nodes of numpy's own arctan
    is within 10⁻¹⁵ of it on the range, so pixels agree with healpy's (tested).
    """
    s_max = math.tan(math.pi / 8.0) ** 2

    def ratio(s: np.ndarray) -> np.ndarray:
        root = np.sqrt(s)
        return np.arctan(root) / root

    series = np.polynomial.Chebyshev.interpolate(ratio, 14, domain=[0.0, s_max])
    return np.ascontiguousarray(series.convert(kind=np.polynomial.Polynomial).coef)


_C = tuple(float(c) for c in _atan_series())  # c0 … c14, ascending powers of s
_TAN_PI_8 = math.tan(math.pi / 8.0)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pixels(x: Any, y: Any, z: Any, nside: int, out: Any) -> None:
    """RING pixels of directions (x, y, z) (float64 arrays, none zero) into ``out``.

    Branch-free on purpose: every ``a if c else b`` below is a select, so the loop
    vectorises. Equal to ``healpy.vec2pix``, near the poles included (sin θ from x, y).
    """
    fn = float(nside)
    npix = 12 * nside * nside
    ncap = 2 * nside * (nside - 1)
    for i in range(x.shape[0]):
        xi, yi, zi = x[i], y[i], z[i]
        rxy2 = xi * xi + yi * yi
        r = math.sqrt(rxy2 + zi * zi)
        cos_t = zi / r
        za = abs(cos_t)
        # φ/(π/2) in [0, 4): octant reduction, then the series on |t| ≤ tan(π/8).
        ax, ay = abs(xi), abs(yi)
        high, low = max(ax, ay), min(ax, ay)
        t = low / high if high > 0.0 else 0.0
        big = t > _TAN_PI_8
        t = (t - 1.0) / (t + 1.0) if big else t
        base = math.pi / 4.0 if big else 0.0
        s = t * t
        s2 = s * s
        s4 = s2 * s2
        low4 = (_C[0] + _C[1] * s + (_C[2] + _C[3] * s) * s2) + (
            _C[4] + _C[5] * s + (_C[6] + _C[7] * s) * s2
        ) * s4
        high4 = (_C[8] + _C[9] * s + (_C[10] + _C[11] * s) * s2) + (
            _C[12] + _C[13] * s + _C[14] * s2
        ) * s4
        angle = base + t * (low4 + high4 * (s4 * s4))
        angle = math.pi / 2.0 - angle if ay > ax else angle
        angle = math.pi - angle if xi < 0.0 else angle
        tt = angle * (2.0 / math.pi)
        tt = 4.0 - tt if yi < 0.0 else tt
        tt = tt if tt < 4.0 else 0.0
        # equatorial belt, |cos θ| ≤ 2/3
        t1 = fn * (0.5 + tt)
        t2 = fn * 0.75 * cos_t
        jp = np.int64(t1 - t2)
        jm = np.int64(t1 + t2)
        ir = nside + 1 + jp - jm
        ip = ((jp + jm - nside + (1 - (ir & 1)) + 1) >> 1) & (4 * nside - 1)
        belt = ncap + (ir - 1) * 4 * nside + ip
        # polar caps
        tp = tt - math.floor(tt)
        near_pole = fn * (math.sqrt(rxy2) / r) * math.sqrt(3.0 / (1.0 + za))
        elsewhere = fn * math.sqrt(max(3.0 * (1.0 - za), 0.0))
        tmp = near_pole if za > _POLAR_SIN else elsewhere
        jp2 = np.int64(tp * tmp)
        jm2 = np.int64((1.0 - tp) * tmp)
        ir2 = jp2 + jm2 + 1
        ip2 = np.int64(tt * ir2)
        ip2 = ip2 - 4 * ir2 if ip2 >= 4 * ir2 else ip2
        cap = 2 * ir2 * (ir2 - 1) + ip2 if cos_t > 0.0 else npix - 2 * ir2 * (ir2 + 1) + ip2
        out[i] = belt if za <= 2.0 / 3.0 else cap


@numba.njit(cache=True, nogil=True, error_model="numpy")
def count_particles(
    counts: Any, positions: Any, radii: Any, use_radii: bool, edges: Any, scale: float, nside: int
) -> int:
    """Add each particle to ``counts[shell, pixel]`` (see ``_pixel_kernels.count_particles``)."""
    n_shells, npix = counts.shape
    flat = counts.reshape(-1)
    low = edges[0]
    high = edges[n_shells]
    per_mpc = n_shells / (high - low)  # exact for equal shells; corrected below if not
    x = np.empty(_SCATTER)
    y = np.empty(_SCATTER)
    z = np.empty(_SCATTER)
    r = np.empty(_SCATTER)
    counted = np.empty(_SCATTER, dtype=np.bool_)
    pixels = np.empty(_SCATTER, dtype=np.int64)
    binned = 0
    for start in range(0, positions.shape[0], _SCATTER):
        n = min(_SCATTER, positions.shape[0] - start)
        for k in range(n):  # de-interleave to float64; the origin gets a harmless direction
            xi = np.float64(positions[start + k, 0])
            yi = np.float64(positions[start + k, 1])
            zi = np.float64(positions[start + k, 2])
            d2 = xi * xi + yi * yi + zi * zi
            rk = radii[start + k] if use_radii else math.sqrt(d2) * scale
            r[k] = rk
            counted[k] = (rk >= low) & (rk < high) & (d2 > 0.0)
            x[k] = xi if d2 > 0.0 else 1.0
            y[k] = yi
            z[k] = zi
        _pixels(x[:n], y[:n], z[:n], nside, pixels)
        for k in range(n):
            if not counted[k]:
                continue
            rk = r[k]
            shell = min(int((rk - low) * per_mpc), n_shells - 1)  # edges[shell] ≤ r < next
            while rk < edges[shell]:
                shell -= 1
            while rk >= edges[shell + 1]:
                shell += 1
            flat[shell * npix + pixels[k]] += 1
            binned += 1
    return binned


@numba.njit(cache=True, nogil=True, error_model="numpy")
def ring_pixels(positions: Any, nside: int, out: Any) -> None:
    """RING pixel of each row of ``positions`` (not normalised) into ``out``."""
    x = np.ascontiguousarray(positions[:, 0]).astype(np.float64)
    y = np.ascontiguousarray(positions[:, 1]).astype(np.float64)
    z = np.ascontiguousarray(positions[:, 2]).astype(np.float64)
    _pixels(x, y, z, nside, out)
