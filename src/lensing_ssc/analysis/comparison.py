"""Comparing two patch sets: variance ratios, signal-to-noise and the SSC term, with intervals.

Conventions. A set is ``(N, F)`` samples (one row per patch) whose rows are grouped by the
map (realisation) they were cut from. Variances and covariances use ddof = 1.

* **Variance ratio** per entry: Var(numerator) / Var(denominator); NaN where the
  denominator never varies. Only the diagonal: the element-wise ratio of off-diagonal
  covariances divides numbers that scatter around zero and means nothing.
* **Signal-to-noise** of a set: (S/N)² = h · μᵀ Ĉ⁻¹ μ, μ the mean and Ĉ the covariance of
  one patch's data vector over the set (entries that never vary are left out; p is how
  many stay), debiased by the Hartlap factor h = (N − p − 2)/(N − 1) for the inverse of a
  sample covariance of N independent vectors (Hartlap, Simon & Schneider 2007, A&A 464,
  399, eq. 17). With N ≤ p + 2 the inverse is not defined: :func:`signal_to_noise` refuses,
  :func:`compare_sets` records NaN. Patches of one map are not independent, so with
  several patches per map h is a lower bound on the correction; the interval over maps
  below carries the rest.
* **SSC response** of each entry to the patch-mean convergence κ̄, from the numerator set
  (the one with super-sample modes): the least-squares slope R = Cov(s, κ̄) / Var(κ̄) over
  its patches, and the super-sample variance it predicts, σ²_SSC = R² Var(κ̄) (the
  response approach of Li, Hu & Takada 2014, PRD 89, 083519; Takada & Hu 2013, PRD 87,
  123504). It is compared with the measured excess Var(numerator) − Var(denominator);
  both are given in units of Var(denominator), so the measured excess is the variance
  ratio minus 1. The response is that of the statistic as measured: a statistic measured
  after subtracting each patch's mean does not see κ̄, and its prediction is ≈ 0.
* **Intervals** are over maps, not patches: patches of one map are correlated, so the
  independent units are the maps (Efron & Tibshirani 1993, ch. 8). The variance ratios
  and the SSC terms get, by default (``interval="jackknife"``), jackknife-t intervals:
  each set's maps are left out one at a time (all their patches together), the two sets
  are independent samples, and the interval is θ̂ ± t_ν SE on ln θ for the ratio and the
  predicted excess (both positive; a predicted excess not clear of 0 gets its interval on
  θ, held at 0 from below) and on θ for measured − predicted (formulas in ``_intervals``;
  the measured excess's interval is the ratio's less 1). Over 16 maps
  per set these miss a true ratio about as often as stated: in a Gaussian control (the
  pipeline's, 33 seeds, 95 % intervals of the map statistics' ratios) 5.1 % of the
  intervals missed 1, against 7.8 % for the percentile intervals of a bootstrap over maps
  and 8.0 % for its BCa intervals (bias-corrected and accelerated, Efron 1987), which
  ``interval="percentile"`` and ``"bca"`` give: the bootstrap distribution of a statistic
  of 16 units is too narrow, and BCa corrects its bias and skewness, not its width. The
  bootstrap draws each set's maps with replacement and takes *all* patches of every drawn
  map; the two sets are resampled independently. For S/N, which repeated maps bias
  upwards, the interval is always the bootstrap's basic one (the percentiles reflected
  about the estimate; Davison & Hinkley 1997, eq. 5.6).

Here: the comparison's types and :func:`compare_sets`, made of the estimators
(``_estimators``), the resampling over maps (``_map_resampling``), the moments of a
reweighted set (``_map_sums``) and the intervals (``_intervals``). What this module does
not do: build the sets (:mod:`lensing_ssc.analysis.ssc`), summarise one set
(:mod:`lensing_ssc.analysis.covariance`), or write files (the pipeline's ``_results``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lensing_ssc.analysis._blas import one_blas_thread
from lensing_ssc.analysis._estimators import (
    correlation_matrix,
    hartlap_factor,
    hartlap_sns,
    predicted_excess,
    ratio_or_nan,
    signal_to_noise,
    ssc_response,
)
from lensing_ssc.analysis._intervals import (
    basic_interval,
    bca_interval,
    jackknife_t_interval,
    nonnegative_jackknife_t_interval,
    percentile_interval,
)
from lensing_ssc.analysis._joint_vectors import distinct_entries, setting_groups
from lensing_ssc.analysis._map_resampling import leave_one_map_out, map_bootstrap, map_weights
from lensing_ssc.analysis._map_sums import MapSums, Moments
from lensing_ssc.core.base.exceptions import AnalysisError

__all__ = [
    "RESAMPLING_METHOD",
    "IntervalKind",
    "SetComparison",
    "StatisticComparison",
    "compare_sets",
    "distinct_entries",
    "hartlap_factor",
    "interval_words",
    "map_bootstrap",
    "setting_groups",
    "signal_to_noise",
    "ssc_response",
]

RESAMPLING_METHOD = "bootstrap over maps"
"""How intervals are made: whole maps (all their patches together) drawn with replacement."""

IntervalKind = Literal["jackknife", "bca", "percentile"]
"""How the variance ratios' and SSC terms' intervals are made (see the module)."""


def interval_words(interval: str, n_resamples: int | None = None) -> str:
    """Say how a comparison's intervals were made, from its ``interval`` kind.

    Example:
        >>> interval_words("jackknife", 200)
        'jackknife-t over maps; S/N: bootstrap over maps, 200 resamples'
    """
    resamples = "" if n_resamples is None else f", {n_resamples} resamples"
    if interval == "jackknife":
        return f"jackknife-t over maps; S/N: bootstrap over maps{resamples}"
    kind = "BCa" if interval == "bca" else "percentile"
    return f"{kind} bootstrap over maps{resamples}"


@dataclass(frozen=True, eq=False)
class StatisticComparison:
    """One statistic (or one setting's joint data vector) of two sets, compared.

    Intervals are ``(2, …)`` arrays: lower bound, upper bound. Per-set quantities are
    ``(numerator, denominator)``. The SSC fields are ``None`` without patch means.

    Attributes:
        variance_ratio: ``(F,)`` Var(numerator)/Var(denominator) per entry.
        variance_ratio_interval: ``(2, F)``.
        correlation: ``(2, F, F)`` correlation matrices of numerator and denominator.
        signal_to_noise: ``(2,)`` S/N of each set with the Hartlap factor (NaN: refused).
        signal_to_noise_interval: ``(2, 2)``, one row per set.
        hartlap: ``(2,)`` the Hartlap factor of each set (NaN where N ≤ p + 2).
        ssc_response: ``(F,)`` R, the slope against the patch mean in the numerator set.
        ssc_predicted: ``(F,)`` R² Var(κ̄) / Var(denominator).
        ssc_measured: ``(F,)`` (Var(numerator) − Var(denominator)) / Var(denominator).
        ssc_predicted_interval, ssc_measured_interval, ssc_difference_interval:
            ``(2, F)``; the last is that of measured − predicted.
    """

    variance_ratio: np.ndarray
    variance_ratio_interval: np.ndarray
    correlation: np.ndarray
    signal_to_noise: np.ndarray
    signal_to_noise_interval: np.ndarray
    hartlap: np.ndarray
    ssc_response: np.ndarray | None = None
    ssc_predicted: np.ndarray | None = None
    ssc_predicted_interval: np.ndarray | None = None
    ssc_measured: np.ndarray | None = None
    ssc_measured_interval: np.ndarray | None = None
    ssc_difference_interval: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field that is set, by name (the results file's dataset names)."""
        return {name: value for name, value in vars(self).items() if isinstance(value, np.ndarray)}


@dataclass(frozen=True, eq=False)
class SetComparison:
    """Every statistic of two sets compared, and how the intervals were made.

    Attributes:
        statistics: Per statistic key.
        joint: Per setting (:func:`setting_groups`): S/N of the joint data vector only
            (its entries as :func:`distinct_entries` keeps them).
        method: :data:`RESAMPLING_METHOD`.
        n_resamples: Resamples drawn.
        confidence: Confidence level of the intervals.
        n_maps: ``(numerator, denominator)`` maps resampled.
        interval: How the ratios' and SSC terms' intervals were made:
            :data:`IntervalKind` (S/N always has the basic bootstrap interval).
    """

    statistics: dict[str, StatisticComparison]
    joint: dict[str, StatisticComparison]
    method: str
    n_resamples: int
    confidence: float
    n_maps: tuple[int, int]
    interval: IntervalKind = "jackknife"

    @property
    def intervals(self) -> str:
        """How the intervals were made, in words (the summary's and figures' wording)."""
        return interval_words(self.interval, self.n_resamples)

    def to_dict(self) -> dict[str, Any]:
        """How the intervals were made (JSON-ready)."""
        return {
            "method": self.method,
            "interval": self.interval,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "n_maps": list(self.n_maps),
        }


def _check(name: str, samples: Mapping[str, np.ndarray], groups: Sequence[Any]) -> None:
    for key, rows in samples.items():
        if rows.shape[0] != len(groups):
            raise AnalysisError(
                f"{name} statistic {key!r} has {rows.shape[0]} rows but {len(groups)} map labels",
                value=(rows.shape[0], len(groups)),
                hint="give the map of every row, in the rows' order",
            )


@one_blas_thread
def compare_sets(
    numerator: Mapping[str, np.ndarray],
    denominator: Mapping[str, np.ndarray],
    *,
    numerator_maps: Sequence[Any],
    denominator_maps: Sequence[Any],
    rng: np.random.Generator,
    patch_mean: np.ndarray | None = None,
    n_resamples: int = 200,
    confidence: float = 0.68,
    interval: IntervalKind = "jackknife",
) -> SetComparison:
    """Compare every statistic of two sets, with intervals from a bootstrap over maps.

    Args:
        numerator, denominator: ``{key: (N, F) samples}`` with the same keys and widths.
        numerator_maps, denominator_maps: The map of each row of the set.
        rng: Seeds the resampling (derive it from the run's seed).
        patch_mean: ``(N,)`` patch-mean κ of the numerator's rows; gives the SSC term.
        n_resamples: Bootstrap resamples.
        confidence: Level of the intervals, in (0, 1).
        interval: How the variance ratios' and SSC terms' intervals are made:
            ``"jackknife"`` (default; jackknife-t over maps), or from the resamples
            ``"bca"`` or ``"percentile"`` (see the module). S/N always has the basic
            bootstrap interval.

    Raises:
        AnalysisError: keys or widths differ, a row has no map label, too few rows, or the
            settings of the resampling are out of range.
    """
    if not 0.0 < confidence < 1.0 or n_resamples < 2:
        raise AnalysisError(
            f"confidence must be in (0, 1) and n_resamples ≥ 2, got {confidence!r} and "
            f"{n_resamples!r}",
            value=(confidence, n_resamples),
            hint="use e.g. confidence=0.68 and n_resamples=200",
        )
    if interval not in ("jackknife", "bca", "percentile"):
        raise AnalysisError(
            f"interval must be 'jackknife', 'bca' or 'percentile', got {interval!r}",
            value=interval,
            hint="use interval='jackknife'",
        )
    if set(numerator) != set(denominator):
        raise AnalysisError(
            "the two sets hold different statistics",
            value=sorted(set(numerator) ^ set(denominator))[:3],
            hint="compare sets measured with one settings object",
        )
    _check("numerator", numerator, numerator_maps)
    _check("denominator", denominator, denominator_maps)
    keys = list(numerator)
    widths = {key: numerator[key].shape[1] for key in keys}
    for key in keys:
        if denominator[key].shape[1] != widths[key]:
            raise AnalysisError(
                f"statistic {key!r} has {widths[key]} entries in one set and "
                f"{denominator[key].shape[1]} in the other",
                value=key,
                hint="compare sets measured with one settings object",
            )
    if min(len(numerator_maps), len(denominator_maps)) < 3:
        raise AnalysisError(
            "each set needs at least 3 patches to compare variances",
            value=(len(numerator_maps), len(denominator_maps)),
            hint="use more maps or more patches per map",
        )
    places: dict[str, slice] = {}
    start = 0
    for key in keys:
        places[key] = slice(start, start + widths[key])
        start += widths[key]
    top = np.concatenate([np.asarray(numerator[k], dtype=float) for k in keys], axis=1)
    bottom = np.concatenate([np.asarray(denominator[k], dtype=float) for k in keys], axis=1)
    joints = {
        setting: distinct_entries(
            top,
            bottom,
            np.concatenate([np.arange(places[k].start, places[k].stop) for k in members]),
        )
        for setting, members in setting_groups(keys).items()
    }
    blocks: dict[str, Any] = {**places, **joints}
    kappa = None if patch_mean is None else np.asarray(patch_mean, dtype=float).ravel()
    if kappa is not None and kappa.shape[0] != top.shape[0]:
        raise AnalysisError(
            f"{kappa.shape[0]} patch means for {top.shape[0]} numerator rows",
            value=kappa.shape[0],
            hint="pass the patch mean of every numerator row, in order",
        )

    # Every resample below is a weighting of each set's maps: its moments come from the
    # maps' sums (``_map_sums``), not from the resampled patches.
    top_sums = MapSums(top, numerator_maps, blocks, kappa)
    bottom_sums = MapSums(bottom, denominator_maps, blocks)

    def measure(a: Moments, b: Moments, solved: dict[str, Any] | None = None) -> dict[str, Any]:
        """Each quantity of R weightings of both sets: ``(R, F)`` arrays, ``(R, 2)`` S/N
        and Hartlap factors.

        ``solved`` names, per block, the sets whose S/N is measured (default: all); NaN
        for the others.
        """
        unsolved = (np.full(np.size(a.n), np.nan),) * 2
        sn, hartlap = {}, {}
        for name in blocks:
            wanted = (True, True) if solved is None else solved[name]
            per_set = [
                hartlap_sns(moments, name) if asked else unsolved
                for moments, asked in zip((a, b), wanted, strict=True)
            ]
            sn[name] = np.column_stack([values for values, _ in per_set])
            hartlap[name] = np.column_stack([factors for _, factors in per_set])
        return {
            "ratio": ratio_or_nan(a.variance, b.variance),
            "sn": sn,
            "hartlap": hartlap,
            "predicted": predicted_excess(a, b),
        }

    ones_top, ones_bottom = np.ones(top_sums.n_maps), np.ones(bottom_sums.n_maps)
    point_top, point_bottom = top_sums.moments(ones_top), bottom_sums.moments(ones_bottom)
    point = measure(point_top, point_bottom)
    point["sn"] = {name: sn[0] for name, sn in point["sn"].items()}
    point["hartlap"] = {name: factors[0] for name, factors in point["hartlap"].items()}
    point["measured"] = point["ratio"] - 1.0
    top_weights = map_weights(top_sums.n_maps, n_resamples, rng)
    bottom_weights = map_weights(bottom_sums.n_maps, n_resamples, rng)
    # A resample's S/N only serves the interval about the point's, which is NaN where the
    # point's is (a singular joint covariance, say): those resamples are not solved.
    draws = measure(
        top_sums.moments(np.array(top_weights)),
        bottom_sums.moments(np.array(bottom_weights)),
        {name: tuple(np.isfinite(sn)) for name, sn in point["sn"].items()},
    )
    ratio_draws = draws["ratio"]
    ssc = point["predicted"] is not None
    if ssc:
        predicted_draws = draws["predicted"]
        measured_draws = ratio_draws - 1.0
        response = np.asarray(point_top.kappa_covariance) / point_top.kappa_variance
    jackknife: dict[str, list[np.ndarray]] = {}
    if interval != "percentile":
        jackknife = leave_one_map_out(top_sums, bottom_sums, point_top, point_bottom, ssc)

    def bounds(
        name: str, estimate: np.ndarray, values: np.ndarray, block: Any, *, scale: str
    ) -> np.ndarray:
        """The interval of one quantity; ``scale`` (``"log"``, ``"linear"`` or
        ``"nonnegative"``) says on what the jackknife-t one is built."""
        if interval == "percentile":
            return percentile_interval(values[:, block], confidence)
        left_out = [values[:, block] for values in jackknife[name]]
        if interval == "bca":
            return bca_interval(estimate[block], values[:, block], left_out, confidence)
        if scale == "nonnegative":
            return nonnegative_jackknife_t_interval(estimate[block], left_out, confidence)
        return jackknife_t_interval(estimate[block], left_out, confidence, log=scale == "log")

    def build(name: str, block: Any, joint: bool) -> StatisticComparison:
        sn_draws = draws["sn"][name]
        a_rows, b_rows = top[:, block], bottom[:, block]
        sn = point["sn"][name]
        ratio_interval = bounds("ratio", point["ratio"], ratio_draws, block, scale="log")
        fields: dict[str, Any] = {
            "variance_ratio": point["ratio"][block],
            "variance_ratio_interval": ratio_interval,
            "correlation": np.stack([correlation_matrix(a_rows), correlation_matrix(b_rows)]),
            "signal_to_noise": sn,
            "signal_to_noise_interval": basic_interval(sn, sn_draws, confidence),
            "hartlap": point["hartlap"][name],
        }
        if ssc and not joint:
            difference = point["measured"] - point["predicted"]
            fields.update(
                ssc_response=response[block],
                ssc_predicted=point["predicted"][block],
                ssc_predicted_interval=bounds(
                    "predicted", point["predicted"], predicted_draws, block, scale="nonnegative"
                ),
                ssc_measured=point["measured"][block],
                # The ratio's interval less 1, whichever kind (each is shift-equivariant).
                ssc_measured_interval=ratio_interval - 1.0,
                ssc_difference_interval=bounds(
                    "difference",
                    difference,
                    measured_draws - predicted_draws,
                    block,
                    scale="linear",
                ),
            )
        return StatisticComparison(**fields)

    return SetComparison(
        statistics={key: build(key, places[key], False) for key in keys},
        joint={name: build(name, block, True) for name, block in joints.items()},
        method=RESAMPLING_METHOD,
        n_resamples=n_resamples,
        confidence=confidence,
        n_maps=(len(set(numerator_maps)), len(set(denominator_maps))),
        interval=interval,
    )
