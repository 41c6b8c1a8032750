"""Uniform threshold bins in ν and the constant-time binning every map statistic shares.

Each bin of width Δν is split into two halves, so one integer index per pixel serves the
PDF and the Minkowski weights (per bin) as well as V0 (evaluated exactly at bin centres).
Index 0 collects values below the first edge, index ``2B + 1`` values at or above the last.
The values may be of any array namespace (NumPy, CuPy, ...); the edges stay on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lensing_ssc.analysis._arrays import array_device, namespace
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = ["NuBins", "nu_bins"]


@dataclass(frozen=True, eq=False)
class NuBins:
    """``B`` equal-width bins in ν with edges ``edges`` (length ``B + 1``)."""

    edges: np.ndarray

    @property
    def n_bins(self) -> int:
        """Number of bins B."""
        return int(self.edges.size - 1)

    @property
    def width(self) -> float:
        """Bin width Δν."""
        return float(self.edges[1] - self.edges[0])

    @property
    def centers(self) -> np.ndarray:
        """Bin centres."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def half_index(self, values: Any, scale: Any) -> Any:
        """Return the half-bin index (0 … 2B+1) of ``values / scale``, one row per patch.

        Args:
            values: ``(b, ...)`` values of any array namespace; row r belongs to patch r.
            scale: ``(b,)`` ν normalisation of each row, in the same namespace; for NumPy
                values also one float for all of them.

        Returns:
            ``(b, P)`` integer indices (``intp`` for NumPy); for NumPy values and a float
            ``scale``, the indices of all values, flattened.
        """
        width = self.width
        offset = 1.0 - 2.0 * float(self.edges[0]) / width
        top = float(2 * self.n_bins + 1)
        if type(values) is np.ndarray:
            if isinstance(scale, float):
                u = values.ravel() * (2.0 / (width * scale))
            else:
                u = values.reshape(values.shape[0], -1) * (2.0 / (width * scale))[:, None]
            u += offset
            np.clip(u, 0.0, top, out=u)
            return u.astype(np.intp)
        xp = namespace(values)
        step = 2.0 / (width * scale)
        u = xp.reshape(values, (values.shape[0], -1)) * step[:, None]
        # maximum and minimum, not clip: array-api-compat's clip for CuPy assigns through
        # boolean masks, and each mask makes the host wait for the device.
        device = array_device(values)
        low = xp.zeros((), dtype=u.dtype, device=device)
        high = xp.full((), top, dtype=u.dtype, device=device)
        u = xp.minimum(xp.maximum(u + offset, low), high)
        return xp.astype(xp.floor(u), xp.int64)

    @property
    def n_half(self) -> int:
        """Length of a half-bin histogram, overflow slots included."""
        return 2 * self.n_bins + 2

    def per_bin(self, half_counts: Any) -> Any:
        """Sum half-bin histograms (last axis) into per-bin totals, dropping the overflows."""
        inner = half_counts[..., 1:-1]
        return inner[..., 0::2] + inner[..., 1::2]

    def above_centers(self, half_counts: Any) -> Any:
        """Return, for each bin centre, how many counted values lie above it (last axis)."""
        # tail[..., j] = Σ_{i ≥ j}; bin b's centre is the boundary before half-bin 2 + 2b.
        if type(half_counts) is np.ndarray:
            tail = np.cumsum(half_counts[..., ::-1], axis=-1)[..., ::-1]
        else:
            xp = namespace(half_counts)
            tail = xp.flip(xp.cumulative_sum(xp.flip(half_counts, axis=-1), axis=-1), axis=-1)
        return tail[..., 2 : 2 * self.n_bins + 1 : 2]


def nu_bins(edges: npt.ArrayLike) -> NuBins:
    """Validate equal-width, increasing ν edges and return them as :class:`NuBins`."""
    array = np.asarray(edges, dtype=float)
    if array.ndim != 1 or array.size < 2 or not np.all(np.isfinite(array)):
        raise AnalysisError(
            "ν bin edges must be a 1-D array of at least two finite numbers",
            value=np.asarray(edges).tolist(),
            hint="e.g. numpy.linspace(-4, 4, 17)",
        )
    steps = np.diff(array)
    if np.any(steps <= 0) or not np.allclose(steps, steps[0], rtol=1e-9, atol=0.0):
        raise AnalysisError(
            "ν bin edges must be increasing and equally spaced",
            value=array.tolist(),
            hint="build them with numpy.linspace",
        )
    array.setflags(write=False)
    return NuBins(edges=array)
