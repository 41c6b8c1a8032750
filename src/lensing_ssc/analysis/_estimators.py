"""What a comparison measures: S/N, the Hartlap factor, the SSC response, variance ratios.

Of one set's rows: :func:`hartlap_factor`, :func:`signal_to_noise` (with the Hartlap
factor), :func:`ssc_response` (each entry's slope against the patch mean) and
:func:`correlation_matrix`. Of the moments of a (resampled) set, from its maps' sums
(:mod:`._map_sums`): :func:`hartlap_sns`, and of two sets' moments
:func:`ratio_or_nan` (the variance ratio) and :func:`predicted_excess` (the SSC excess the
response predicts). The conventions and their sources are in
:mod:`lensing_ssc.analysis.comparison`, which compares two sets with these; how resamples
are drawn is in :mod:`._map_resampling`, how intervals are read in :mod:`._intervals`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lensing_ssc.analysis._map_sums import Moments, chi2_of, chi2_of_moments
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "correlation_matrix",
    "hartlap_factor",
    "hartlap_sns",
    "predicted_excess",
    "ratio_or_nan",
    "signal_to_noise",
    "ssc_response",
]


def hartlap_factor(n_samples: int, n_entries: int) -> float:
    """Return h = (N − p − 2)/(N − 1), the debiasing factor of an inverse sample covariance.

    Args:
        n_samples: N, the vectors the covariance was estimated from.
        n_entries: p, the length of each vector.

    Raises:
        AnalysisError: N ≤ p + 2, where the inverse sample covariance has no finite mean.

    Example:
        >>> hartlap_factor(100, 8)
        0.9090909090909091
    """
    if n_samples <= n_entries + 2:
        raise AnalysisError(
            f"{n_samples} samples cannot give the inverse covariance of {n_entries} entries "
            f"(the Hartlap factor needs N > p + 2 = {n_entries + 2})",
            value=n_samples,
            hint="use more patches or maps, or fewer bins in the data vector",
        )
    return (n_samples - n_entries - 2) / (n_samples - 1)


def _chi2(rows: np.ndarray) -> tuple[float, int]:
    """Return μᵀ Ĉ⁻¹ μ of ``rows`` (no Hartlap factor) over its varying entries, and p."""
    varying = rows.std(axis=0) > 0
    covariance = np.zeros((rows.shape[1], rows.shape[1]))
    if rows.shape[0] > 1:
        data = rows[:, varying]
        covariance[np.ix_(varying, varying)] = np.cov(data, rowvar=False).reshape(
            data.shape[1], data.shape[1]
        )
    return chi2_of(rows.mean(axis=0), covariance, rows.shape[0])


def signal_to_noise(samples: Any) -> float:
    """Return S/N = √(h · μᵀ Ĉ⁻¹ μ) of one patch's data vector, over the rows of ``samples``.

    Args:
        samples: ``(N, F)`` data vectors; entries that never vary are left out.

    Raises:
        AnalysisError: N ≤ p + 2 (see :func:`hartlap_factor`), or a singular covariance.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> round(signal_to_noise(rng.normal(1.0, 1.0, size=(4000, 2))), 1)
        1.4
    """
    rows = np.asarray(samples, dtype=float)
    rows = rows.reshape(rows.shape[0], -1)
    chi2, p = _chi2(rows)
    factor = hartlap_factor(rows.shape[0], p)
    if not np.isfinite(chi2):
        raise AnalysisError(
            "the covariance of the data vector is singular",
            value=p,
            hint="drop degenerate bins (e.g. PDF bins that add up to a constant)",
        )
    return float(np.sqrt(max(factor * chi2, 0.0)))


def ssc_response(samples: Any, patch_mean: Any) -> np.ndarray:
    """Return R = Cov(s, κ̄) / Var(κ̄) per entry: each entry's slope against the patch mean.

    Example:
        >>> kappa = np.array([-0.01, 0.0, 0.01, 0.02])
        >>> ssc_response(np.c_[3.0 * kappa + 1.0, np.ones(4)], kappa).round(6).tolist()
        [3.0, 0.0]
    """
    rows = np.asarray(samples, dtype=float)
    rows = rows.reshape(rows.shape[0], -1)
    kappa = np.asarray(patch_mean, dtype=float).ravel()
    if kappa.shape[0] != rows.shape[0] or rows.shape[0] < 3:
        raise AnalysisError(
            f"need one patch mean per row and at least 3 rows: {rows.shape[0]} rows, "
            f"{kappa.shape[0]} patch means",
            value=(rows.shape[0], kappa.shape[0]),
            hint="pass the patch means of the same patches, in the same order",
        )
    centred = kappa - kappa.mean()
    variance = float(centred @ centred)
    if variance == 0:
        raise AnalysisError(
            "the patch means never vary, so no response to them can be measured",
            value=0.0,
            hint="measure the response on patches cut from larger fields (sub-patches)",
        )
    return np.asarray(centred @ (rows - rows.mean(axis=0)) / variance)


def ratio_or_nan(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Return ``top / bottom`` per entry, NaN where ``bottom`` is 0 (an entry that never varies).

    Example:
        >>> ratio_or_nan(np.array([2.0, 1.0]), np.array([4.0, 0.0])).tolist()
        [0.5, nan]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(top / bottom, dtype=float)
    out[np.broadcast_to(bottom == 0, out.shape)] = np.nan
    return out


def hartlap_sns(moments: Moments, block: str) -> tuple[np.ndarray, np.ndarray]:
    """S/N of a block with the Hartlap factor, and the factor, of R reweightings of one set
    at once (``(R,)`` each; NaN, NaN where refused: too few rows or a singular covariance)."""
    chi2, p = chi2_of_moments(moments, block)
    n = np.atleast_1d(moments.n)
    refused = ~np.isfinite(chi2) | (n <= p + 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(refused, np.nan, (n - p - 2) / (n - 1))
        sn = np.where(refused, np.nan, np.sqrt(np.maximum(factor * chi2, 0.0)))
    return sn, factor


def correlation_matrix(rows: np.ndarray) -> np.ndarray:
    """Return the ``(F, F)`` correlation matrix of ``(N, F)`` rows, NaN for entries that never vary.

    Example:
        >>> correlation_matrix(np.array([[1.0, 2.0, 5.0], [2.0, 4.0, 5.0], [3.0, 6.0, 5.0]]))
        array([[ 1.,  1., nan],
               [ 1.,  1., nan],
               [nan, nan, nan]])
    """
    std = rows.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(np.cov(rows, rowvar=False, ddof=1).reshape(len(std), len(std)))
        out = out / np.outer(std, std)
    out[(std == 0)[:, None] | (std == 0)[None, :]] = np.nan
    return out


def predicted_excess(a: Moments, b: Moments) -> np.ndarray | None:
    """R² Var(κ̄) / Var(denominator) per entry, or ``None`` without (varying) patch means.

    Of R weightings at once, ``(R, P)``, NaN for a weighting whose κ̄ does not vary.
    """
    if a.kappa_covariance is None:
        return None
    kappa_variance = np.asarray(a.kappa_variance, dtype=float)
    if kappa_variance.ndim == 0 and not kappa_variance > 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        response_squared = a.kappa_covariance**2 / kappa_variance[..., None]
    response_squared[~(kappa_variance > 0)] = np.nan
    return ratio_or_nan(response_squared, b.variance)
