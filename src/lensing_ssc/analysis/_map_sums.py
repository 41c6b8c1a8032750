"""Per-map sums of a patch set, from which any reweighting of its maps gets its moments.

A resample over maps (a bootstrap draw, or a jackknife that leaves one map out) is a set of
weights w_m, one per map: how many times map m's patches are taken. The moments of the
resampled rows follow from each map's sums of its (centred) rows x:

    n = Σ w_m n_m,   μ = c + Σ w_m s_m / n,   (n − 1) Ĉ = Σ w_m S_m − n (μ − c)(μ − c)ᵀ,

with n_m the map's patches, s_m = Σ x, S_m = Σ x xᵀ (the diagonal for every entry, the
full matrix for each block of entries whose S/N is asked) and c the set's mean, which the
rows are centred on so that the subtraction loses no digits. So a resample costs
O(G F²) for G maps instead of O(N F²) for its N patches: one comparison of the HEALPix
study (1050 patches in 6 maps per set, 324 entries, 200 resamples) took 74 s from the
resampled patches and takes 3–4.5 s from the sums, on 2 cores at load average 8. The same
sums give the covariance of each entry with the patch mean κ̄ (the SSC response).

What is not here: what is resampled and how intervals are read
(:mod:`lensing_ssc.analysis.comparison`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MapSums", "Moments", "chi2_of", "map_members"]

# Inverse of the smallest Cholesky pivot² of a correlation matrix above which it is treated
# as singular (double precision keeps about 16 digits; beyond 1e12 the solve's relative
# error can exceed 1e-4).
_MAX_CONDITION = 1e12
# An entry whose resampled variance is below this fraction of its mean square about the
# set's mean does not vary: it is constant in the resample, up to the rounding of the sums.
_CONSTANT = 1e-10


def map_members(groups: Sequence[Any]) -> list[np.ndarray]:
    """The row indices of each map, maps in order of first appearance."""
    order: dict[Any, list[int]] = {}
    for i, label in enumerate(groups):
        order.setdefault(label, []).append(i)
    return [np.array(rows, dtype=np.intp) for rows in order.values()]


def chi2_of(mean: np.ndarray, covariance: np.ndarray, n: float) -> tuple[float, int]:
    """Return μᵀ Ĉ⁻¹ μ over the entries with Ĉ_ii > 0 (no Hartlap factor), and their number p.

    NaN when p = 0, n ≤ p + 2, or the correlation matrix is (near-)singular.
    """
    varying = np.diag(covariance) > 0
    p = int(np.count_nonzero(varying))
    if p == 0 or n <= p + 2:
        return float("nan"), p
    scale = np.sqrt(np.diag(covariance)[varying])
    # In units of each entry's scatter: the correlation matrix, well conditioned unless
    # entries are degenerate (bins that add up to a constant).
    correlation = covariance[np.ix_(varying, varying)] / np.outer(scale, scale)
    # Cholesky refuses a matrix that is not positive definite; its smallest pivot² bounds
    # the smallest eigenvalue from above, so a tiny pivot marks a (near-)singular matrix.
    # Both cost a fraction of an eigendecomposition, paid once per block and resample.
    try:
        lower = np.linalg.cholesky(correlation)
    except np.linalg.LinAlgError:
        return float("nan"), p
    if np.min(np.diag(lower)) ** 2 * _MAX_CONDITION <= 1.0:
        return float("nan"), p
    whitened = np.linalg.solve(lower, mean[varying] / scale)
    return float(whitened @ whitened), p


@dataclass(frozen=True, eq=False)
class Moments:
    """The moments of one reweighting of a set's maps.

    Attributes:
        n: Rows taken (with repeats).
        variance: ``(P,)`` variance of each entry (ddof = 1; 0 where constant).
        kappa_variance: Variance of the patch mean κ̄ (``None`` without patch means).
        kappa_covariance: ``(P,)`` covariance of each entry with κ̄, or ``None``.
    """

    n: float
    variance: np.ndarray
    kappa_variance: float | None
    kappa_covariance: np.ndarray | None
    _sums: MapSums
    _weights: np.ndarray
    _mean: np.ndarray

    def chi2(self, block: str) -> tuple[float, int]:
        """μᵀ Ĉ⁻¹ μ of a block's entries and p (see :func:`chi2_of`)."""
        place = self._sums.blocks[block]
        centred_mean = self._mean[place]
        scatter = np.tensordot(self._weights, self._sums.products[block], axes=1)
        covariance = (scatter - self.n * np.outer(centred_mean, centred_mean)) / (self.n - 1)
        varying = self.variance[place] > 0
        covariance[~varying, :] = 0.0
        covariance[:, ~varying] = 0.0
        return chi2_of(self._sums.centre[place] + centred_mean, covariance, self.n)


class MapSums:
    """Each map's sums of a set's rows, for :meth:`moments` of any weights of the maps.

    Args:
        rows: ``(N, P)`` the set's rows.
        groups: The map of each row.
        blocks: Named entry selections (slices or index arrays) whose S/N is asked.
        kappa: ``(N,)`` the patch means of the rows, for the covariances with κ̄.
    """

    def __init__(
        self,
        rows: np.ndarray,
        groups: Sequence[Any],
        blocks: Mapping[str, Any],
        kappa: np.ndarray | None = None,
    ) -> None:
        members = map_members(groups)
        self.blocks = dict(blocks)
        self.centre = rows.mean(axis=0)
        centred = rows - self.centre
        parts = [centred[rows_of_map] for rows_of_map in members]
        self.counts = np.array([len(rows_of_map) for rows_of_map in members], dtype=float)
        self.sums = np.stack([part.sum(axis=0) for part in parts])
        self.squares = np.stack([np.einsum("ij,ij->j", part, part) for part in parts])
        self.products = {
            name: np.stack([part[:, place].T @ part[:, place] for part in parts])
            for name, place in self.blocks.items()
        }
        self.kappa = None
        if kappa is not None:
            k = kappa - kappa.mean()
            pieces = [k[rows_of_map] for rows_of_map in members]
            self.kappa = (
                np.array([piece.sum() for piece in pieces]),
                np.array([piece @ piece for piece in pieces]),
                np.stack([piece @ part for piece, part in zip(pieces, parts, strict=True)]),
            )

    @property
    def n_maps(self) -> int:
        """G, the maps."""
        return len(self.counts)

    def moments(self, weights: np.ndarray) -> Moments:
        """The moments of the rows with map m taken ``weights[m]`` times."""
        w = np.asarray(weights, dtype=float)
        n = float(w @ self.counts)
        mean = w @ self.sums / n
        mean_square = w @ self.squares / n
        variance = (mean_square - mean**2) * (n / (n - 1))
        variance[variance <= _CONSTANT * mean_square] = 0.0
        kappa_variance = kappa_covariance = None
        if self.kappa is not None:
            k_sums, k_squares, cross = self.kappa
            k_mean = float(w @ k_sums) / n
            kappa_variance = (float(w @ k_squares) / n - k_mean**2) * (n / (n - 1))
            kappa_covariance = (w @ cross / n - k_mean * mean) * (n / (n - 1))
        return Moments(n, variance, kappa_variance, kappa_covariance, self, w, mean)
