"""The inner loop of particles → shells: a radial bin and a HEALPix RING pixel per particle.

:func:`count_particles` adds each particle to ``counts[shell, pixel]``, where the shell is
the bin of its comoving distance among ``edges`` and the pixel that of its direction. Two
implementations give the same counts:

* with numba installed (the ``shells`` extra), a compiled, vectorised loop
  (:mod:`._pixel_compiled`, imported on first use): ~100 M particles/s per core while the
  maps fit in cache, ~30 M/s into maps of nside 2048, where every count is a cache miss
  (``benchmarks/bench_shells.py``);
* without it, numpy on blocks of 2¹⁴ particles (they stay in cache), ~3-5 M/s.

The pixel is HEALPix's ``vec2pix`` in RING order (Górski et al. 2005, eqs. 4–9; the
polar-cap branch uses sin θ near the poles, as the HEALPix C++ library does), in float64
whatever the input precision, so it agrees with ``healpy.vec2pix`` pixel for pixel. A
particle at the origin, or outside ``[edges[0], edges[-1])``, is not counted. What a shell
is and how counts become δ is :mod:`lensing_ssc.analysis.shells`; reading catalogues is
:mod:`lensing_ssc.analysis.lightcone`.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from types import ModuleType

import numpy as np

__all__ = ["HAVE_NUMBA", "count_particles", "ring_pixels"]

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
"""Whether the compiled loop can run. It is imported on first use (:func:`_compiled`):
numba costs ~0.3-0.7 s to import, which every command importing the pipelines would pay."""
_BLOCK = 1 << 14  # particles per numpy block: ~20 float64 temporaries stay in L2 cache
_POLAR_SIN = 0.99  # beyond |cos θ| = 0.99, sin θ from x, y keeps the precision 1 − |z| loses


def _ring_pixels_numpy(x: np.ndarray, y: np.ndarray, z: np.ndarray, nside: int) -> np.ndarray:
    """RING pixels of directions (x, y, z), any length, float64 arithmetic."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    rxy2 = x * x + y * y
    r = np.sqrt(rxy2 + z * z)
    cos_t = z / r
    za = np.abs(cos_t)
    tt = np.arctan2(y, x) * (2.0 / math.pi)
    tt += np.where(tt < 0, 4.0, 0.0)
    # equatorial belt
    t1 = nside * (0.5 + tt)
    t2 = nside * 0.75 * cos_t
    jp = (t1 - t2).astype(np.int64)
    jm = (t1 + t2).astype(np.int64)
    ir = nside + 1 + jp - jm
    ip = (jp + jm - nside + (1 - (ir & 1)) + 1) >> 1
    ip &= 4 * nside - 1
    belt = 2 * nside * (nside - 1) + (ir - 1) * 4 * nside + ip
    # polar caps
    tp = tt - np.floor(tt)
    sin_t = np.sqrt(rxy2) / r
    tmp = np.where(
        za > _POLAR_SIN,
        nside * sin_t * np.sqrt(3.0 / (1.0 + za)),
        nside * np.sqrt(3.0 * np.maximum(1.0 - za, 0.0)),
    )
    jp2 = (tp * tmp).astype(np.int64)
    jm2 = ((1.0 - tp) * tmp).astype(np.int64)
    ir2 = jp2 + jm2 + 1
    ip2 = (tt * ir2).astype(np.int64)
    ip2 -= np.where(ip2 >= 4 * ir2, 4 * ir2, 0)
    north = 2 * ir2 * (ir2 - 1) + ip2
    south = 12 * nside * nside - 2 * ir2 * (ir2 + 1) + ip2
    cap = np.where(cos_t > 0, north, south)
    return np.where(za <= 2.0 / 3.0, belt, cap)


def _count_numpy(
    counts: np.ndarray,
    positions: np.ndarray,
    radii: np.ndarray | None,
    edges: np.ndarray,
    scale: float,
    nside: int,
) -> int:
    flat = counts.reshape(-1)
    npix = counts.shape[1]
    binned = 0
    for start in range(0, positions.shape[0], _BLOCK):
        block = positions[start : start + _BLOCK]
        x, y, z = block[:, 0], block[:, 1], block[:, 2]
        if radii is None:
            xd, yd, zd = (np.asarray(c, dtype=np.float64) for c in (x, y, z))
            r = np.sqrt(xd * xd + yd * yd + zd * zd) * scale
        else:
            r = radii[start : start + _BLOCK]
        shell = np.searchsorted(edges, r, side="right") - 1
        inside = (shell >= 0) & (shell < counts.shape[0]) & (r > 0)
        if not np.any(inside):
            continue
        pixels = _ring_pixels_numpy(x[inside], y[inside], z[inside], nside)
        np.add.at(flat, shell[inside] * npix + pixels, 1)
        binned += int(np.count_nonzero(inside))
    return binned


def _compiled() -> ModuleType:
    if not HAVE_NUMBA:
        raise ModuleNotFoundError(
            'the compiled binning loop needs numba: pip install "lensing-ssc[shells]"'
        )
    return importlib.import_module("lensing_ssc.analysis._pixel_compiled")


def count_particles(
    counts: np.ndarray,
    positions: np.ndarray,
    edges: np.ndarray,
    *,
    nside: int,
    scale: float = 1.0,
    radii: np.ndarray | None = None,
    compiled: bool | None = None,
) -> int:
    """Add each particle to ``counts[shell, pixel]``; return how many were counted.

    Args:
        counts: ``(n_shells, 12 nside²)`` integer array, updated in place.
        positions: ``(N, 3)`` float32 or float64 positions, the observer at the origin.
        edges: ``n_shells + 1`` increasing comoving distances (Mpc) of the shells.
        nside: The maps' resolution.
        scale: Mpc per position unit (1/h for FastPM's Mpc/h).
        radii: Each particle's comoving distance in Mpc, instead of ``scale · |x|``.
        compiled: Use the numba loop (default: when numba is installed).
    """
    use_compiled = HAVE_NUMBA if compiled is None else compiled
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    if use_compiled:
        loop = _compiled()
        positions = np.ascontiguousarray(positions)
        radii_array = (
            np.empty(0) if radii is None else np.ascontiguousarray(radii, dtype=np.float64)
        )
        return int(
            loop.count_particles(
                counts, positions, radii_array, radii is not None, edges, float(scale), int(nside)
            )
        )
    distances = None if radii is None else np.asarray(radii, dtype=np.float64)
    return _count_numpy(counts, positions, distances, edges, float(scale), int(nside))


def ring_pixels(positions: np.ndarray, nside: int, *, compiled: bool | None = None) -> np.ndarray:
    """RING pixel index of each direction ``positions[i]`` (any length, not normalised)."""
    use_compiled = HAVE_NUMBA if compiled is None else compiled
    if use_compiled:
        out = np.empty(positions.shape[0], dtype=np.int64)
        _compiled().ring_pixels(np.ascontiguousarray(positions), int(nside), out)
        return out
    return _ring_pixels_numpy(positions[:, 0], positions[:, 1], positions[:, 2], int(nside))
