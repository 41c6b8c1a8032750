"""Uniform threshold bins in ν and the constant-time binning every map statistic shares.

Each bin of width Δν is split into two halves, so one integer index per pixel serves the
PDF and the Minkowski weights (per bin) as well as V0 (evaluated exactly at bin centres).
Index 0 collects values below the first edge, index ``2B + 1`` values at or above the last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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

    def half_index(self, values: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """Return the half-bin index (0 … 2B+1) of ``values / scale`` as a flat intp array."""
        step = 2.0 / (self.width * scale)
        u = values.ravel() * step
        u += 1.0 - 2.0 * float(self.edges[0]) / self.width
        np.clip(u, 0.0, 2 * self.n_bins + 1, out=u)
        return u.astype(np.intp)

    @property
    def n_half(self) -> int:
        """Length of a half-bin histogram, overflow slots included."""
        return 2 * self.n_bins + 2

    def per_bin(self, half_counts: np.ndarray) -> np.ndarray:
        """Sum half-bin histograms (last axis) into per-bin totals, dropping the overflows."""
        inner = half_counts[..., 1:-1]
        return inner[..., 0::2] + inner[..., 1::2]

    def above_centers(self, half_counts: np.ndarray) -> np.ndarray:
        """Return, for each bin centre, how many counted values lie above it."""
        tail = np.cumsum(half_counts[::-1])[::-1]  # tail[j] = Σ_{i ≥ j}
        return tail[2 + 2 * np.arange(self.n_bins)]


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
