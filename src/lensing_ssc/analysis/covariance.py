"""Ensemble summaries of statistics across realisations, and the SSC covariance ratio.

For a statistic measured on R realisations (rows) with F entries (columns):
mean, standard deviation (ddof = 1), covariance C_ij (ddof = 1) and correlation
r_ij = C_ij / (σ_i σ_j). Entries that never vary (σ = 0, e.g. an empty peak bin) get NaN
correlations, which plots show as blanks. :func:`stack_patch_statistics` turns a list of
per-patch result dicts (see :func:`lensing_ssc.analysis.compute_patch_statistics`) into
one ``(R, F)`` array per key. Writing results to files is the pipeline's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "EnsembleSummary",
    "covariance_ratio",
    "stack_patch_statistics",
    "summarize",
    "summarize_statistics",
]


@dataclass(frozen=True, eq=False)
class EnsembleSummary:
    """Mean, scatter, covariance and correlation of one statistic over realisations.

    Attributes:
        n_realisations: R, the number of rows summarised.
        mean: ``(F,)`` mean.
        std: ``(F,)`` standard deviation (ddof = 1).
        covariance: ``(F, F)`` covariance (ddof = 1).
        correlation: ``(F, F)`` correlation; NaN where an entry has zero variance.
    """

    n_realisations: int
    mean: np.ndarray
    std: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (NaN correlations become ``None``)."""
        corr = [[None if np.isnan(x) else float(x) for x in row] for row in self.correlation]
        return {
            "n_realisations": self.n_realisations,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "covariance": self.covariance.tolist(),
            "correlation": corr,
        }


def _as_rows(samples: Any, name: str) -> np.ndarray:
    array = np.asarray(samples, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim < 2 or array.shape[0] < 2 or array.size == 0:
        raise AnalysisError(
            f"{name} needs at least 2 realisations (rows), got shape {array.shape}",
            value=array.shape,
            hint="stack one row per realisation: shape (R, F) with R ≥ 2",
        )
    array = array.reshape(array.shape[0], -1)
    if not np.all(np.isfinite(array)):
        raise AnalysisError(
            f"{name} contains NaN or infinite values",
            value=int(np.count_nonzero(~np.isfinite(array))),
            hint="drop or recompute the realisations that failed",
        )
    return array


def summarize(samples: Any) -> EnsembleSummary:
    """Return the :class:`EnsembleSummary` of ``samples`` with realisations along axis 0.

    Example:
        >>> s = summarize([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
        >>> s.mean.tolist(), s.std.tolist(), float(s.correlation[0, 0])
        ([3.0, 2.0], [2.0, 0.0], 1.0)
    """
    rows = _as_rows(samples, "samples")
    mean = rows.mean(axis=0)
    centred = rows - mean
    covariance = centred.T @ centred / (rows.shape[0] - 1)
    std = np.sqrt(np.diag(covariance))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = covariance / np.outer(std, std)
    correlation[(std == 0)[:, None] | (std == 0)[None, :]] = np.nan
    return EnsembleSummary(
        n_realisations=rows.shape[0],
        mean=mean,
        std=std,
        covariance=covariance,
        correlation=correlation,
    )


def covariance_ratio(numerator: EnsembleSummary, denominator: EnsembleSummary) -> np.ndarray:
    """Return ``numerator.covariance / denominator.covariance`` elementwise (NaN where 0/0 or x/0).

    For the SSC comparison, pass the summary over sub-patches as numerator and over
    periodic patches as denominator: the diagonal is the variance ratio per entry.
    """
    if numerator.covariance.shape != denominator.covariance.shape:
        raise AnalysisError(
            f"covariances have different shapes {numerator.covariance.shape} and "
            f"{denominator.covariance.shape}",
            value=(numerator.covariance.shape, denominator.covariance.shape),
            hint="compare the same statistic with the same binning",
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = numerator.covariance / denominator.covariance
    ratio[denominator.covariance == 0] = np.nan
    return ratio


def stack_patch_statistics(results: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack per-patch result dicts into ``{key: (R, F) array}``, checking keys and shapes agree."""
    if len(results) == 0:
        raise AnalysisError(
            "no patch results to stack", value=0, hint="compute statistics for at least one patch"
        )
    keys = list(results[0])
    stacked: dict[str, np.ndarray] = {}
    for key in keys:
        rows = []
        for i, result in enumerate(results):
            if set(result) != set(keys):
                missing = sorted(set(keys) ^ set(result))
                raise AnalysisError(
                    f"patch result {i} has different keys: {missing[:3]}",
                    value=missing,
                    hint="compute all patches with one settings object",
                )
            rows.append(np.ravel(result[key]))
        shapes = {row.shape for row in rows}
        if len(shapes) != 1:
            raise AnalysisError(
                f"statistic {key!r} has different lengths across patches: {sorted(shapes)}",
                value=key,
                hint="compute all patches with one settings object",
            )
        stacked[key] = np.vstack(rows)
    return stacked


def summarize_statistics(stacked: Mapping[str, np.ndarray]) -> dict[str, EnsembleSummary]:
    """Return :func:`summarize` of every ``(R, F)`` array in ``stacked``, by key."""
    return {key: summarize(rows) for key, rows in stacked.items()}
