"""Confidence intervals over maps: jackknife-t, and bootstrap percentile, basic and BCa.

Used by :mod:`lensing_ssc.analysis.comparison`, whose resamples draw whole maps and whose
jackknife leaves out one whole map at a time. Every function works entry by entry on
``(B, F)`` resampled values (B resamples of F entries) or ``(n, F)`` leave-one-out values;
NaN values are left out of an entry's quantiles, and an entry with none finite has a NaN
interval.

* **Jackknife-t** (Miller 1968, Ann. Math. Stat. 39, 567, for variances; Efron &
  Tibshirani 1993, ch. 11): on a scale h where the estimate is close to normal (ln for a
  variance ratio), h(θ̂) ± t_ν SE with the jackknife variance of each independent sample k
  of n_k units, v_k = (n_k − 1)/n_k Σ_j (h(θ_(k,j)) − mean_j h(θ_(k,j)))², SE² = Σ_k v_k,
  and Welch–Satterthwaite's ν = (Σ_k v_k)² / Σ_k v_k²/(n_k − 1) degrees of freedom. The
  jackknife variance is biased upwards, if at all (Efron & Stein 1981, Ann. Stat. 9, 586),
  and t_ν widens the interval for the few units it rests on: over 16 maps per set its
  95 % intervals of a variance ratio miss in 4.9–5.1 % of the trials of the Gaussian
  controls in the tests, where the bootstrap's percentile and BCa intervals below miss in
  7.8–10.1 % (the bootstrap distribution of a statistic of 16 units is too narrow, which
  no correction of its bias and skewness mends).
* **Percentile** (Efron & Tibshirani 1993, ch. 13): the central quantiles of the draws.
* **Basic** (Davison & Hinkley 1997, eq. 5.6): the percentiles reflected about the
  estimate, 2θ̂ − q_high … 2θ̂ − q_low.
* **BCa**, bias-corrected and accelerated (Efron 1987, JASA 82, 171; Efron & Tibshirani
  1993, ch. 14.3): the quantiles of the draws at the levels

      α_± = Φ(z₀ + (z₀ + z_±) / (1 − a (z₀ + z_±))),   z_± = Φ⁻¹((1 ± confidence)/2),

  with the bias correction z₀ = Φ⁻¹(fraction of draws below θ̂, ties counted half) and the
  acceleration a from the jackknife. For two independent samples (the two sets), each
  sample k's leave-one-out values θ_(k,j) give the influence values
  u_kj = (n_k − 1)(θ̄_(k,·) − θ_(k,j)), and (Davison & Hinkley 1997, §5.3.2, with the
  influence values of several samples of their §3.2)

      a = Σ_k Σ_j u_kj³ / n_k³  /  (6 (Σ_k Σ_j u_kj² / n_k²)^{3/2}),

  which for one sample is Efron & Tibshirani's jackknife estimate of a. BCa is
  second-order accurate in the number of units where the percentile interval is
  first-order; over few units both inherit the bootstrap distribution's narrowness.

What is not here: drawing the resamples
(:func:`lensing_ssc.analysis.comparison.map_bootstrap`) and the statistics resampled.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

__all__ = [
    "acceleration",
    "basic_interval",
    "bca_interval",
    "jackknife_t_interval",
    "nonnegative_jackknife_t_interval",
    "percentile_interval",
    "student_t_quantile",
]

_NORMAL = NormalDist()
# Nodes of the t distribution's CDF in the angle θ = atan(t/√ν) (module of that function):
# the integrand cos^(ν−1) θ is smooth and bounded there for ν ≥ 1; 4097 trapezoid nodes give
# t_ν quantiles to 1e-6 relative for ν ≥ 1 and levels up to 0.999.
_ANGLES = np.linspace(0.0, 0.5 * np.pi, 4097)


def percentile_interval(draws: np.ndarray, confidence: float) -> np.ndarray:
    """``(2, F)`` central percentile intervals of ``(B, F)`` draws."""
    tail = 50.0 * (1.0 - confidence)
    with warnings.catch_warnings():
        # Entries NaN in every resample (never varying, or S/N refused) stay NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanpercentile(draws, [tail, 100.0 - tail], axis=0))


def basic_interval(estimate: np.ndarray, draws: np.ndarray, confidence: float) -> np.ndarray:
    """``(F, 2)`` basic intervals, one row per entry: 2θ̂ − q_high, 2θ̂ − q_low.

    For S/N, which a resample with repeated maps biases upwards (repeated patches look like
    independent ones): reflecting the percentiles about the estimate removes that bias to
    first order.
    """
    low, high = percentile_interval(draws, confidence)
    return np.stack([2 * estimate - high, 2 * estimate - low], axis=1)


def acceleration(leave_one_out: Sequence[np.ndarray]) -> np.ndarray:
    """The BCa acceleration ``(F,)`` from each sample's ``(n_k, F)`` leave-one-out values.

    Zero where no sample's jackknife varies (or is NaN): the interval is then only
    bias-corrected.

    Example:
        >>> acceleration([np.array([[1.0], [2.0], [3.0]])]).tolist()  # symmetric: no skew
        [0.0]
    """
    cubes = squares = 0.0
    for values in leave_one_out:
        n = values.shape[0]
        influence = (n - 1) * (values.mean(axis=0) - values)
        cubes = cubes + np.sum(influence**3, axis=0) / n**3
        squares = squares + np.sum(influence**2, axis=0) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(cubes / (6.0 * np.power(squares, 1.5)), dtype=float)
    return np.where(np.isfinite(out), out, 0.0)


def _quantiles(draws: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per entry, the quantile of its finite draws at its own level (linear interpolation)."""
    ordered = np.sort(draws, axis=0)  # NaN last
    counts = np.sum(np.isfinite(draws), axis=0)
    position = levels * np.maximum(counts - 1, 0)
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, np.maximum(counts - 1, 0))
    columns = np.arange(draws.shape[1])
    low, high = ordered[below, columns], ordered[above, columns]
    out = low + (position - below) * (high - low)
    return np.where(counts > 0, out, np.nan)


def bca_interval(
    estimate: np.ndarray,
    draws: np.ndarray,
    leave_one_out: Sequence[np.ndarray],
    confidence: float,
) -> np.ndarray:
    """``(2, F)`` BCa intervals of ``(B, F)`` draws about ``(F,)`` estimates.

    Args:
        estimate: θ̂ of each entry, from all the data.
        draws: The resampled values.
        leave_one_out: Per independent sample, ``(n_k, F)`` θ with each unit left out.
        confidence: Level of the intervals, in (0, 1).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> data = rng.exponential(size=40)
        >>> draws = np.array([[rng.choice(data, 40).mean()] for _ in range(2000)])
        >>> jack = np.array([[np.delete(data, i).mean()] for i in range(40)])
        >>> low, high = bca_interval(np.array([data.mean()]), draws, [jack], 0.9)[:, 0]
        >>> bool(low < data.mean() < high)
        True
    """
    values = np.asarray(draws, dtype=float)
    theta = np.asarray(estimate, dtype=float)
    finite = np.isfinite(values)
    counts = np.sum(finite, axis=0)
    with np.errstate(invalid="ignore"):
        below = np.sum(finite & (values < theta), axis=0) + 0.5 * np.sum(values == theta, axis=0)
    # A fraction of 0 or 1 (the estimate outside every draw) would make z₀ infinite: held
    # half a draw inside, the most the draws can say.
    half = 0.5 / np.maximum(counts, 1)
    fraction = np.clip(below / np.maximum(counts, 1), half, 1.0 - half)
    z0 = np.array([_NORMAL.inv_cdf(float(f)) for f in fraction])
    accel = acceleration(leave_one_out)
    levels = []
    for tail in (0.5 * (1.0 - confidence), 0.5 * (1.0 + confidence)):
        z = z0 + _NORMAL.inv_cdf(tail)
        # 1 − a z ≤ 0 only for |a| beyond any sample's skewness; the level is then the edge.
        denominator = np.maximum(1.0 - accel * z, 1e-12)
        adjusted = z0 + z / denominator
        levels.append(np.array([_NORMAL.cdf(float(x)) for x in adjusted]))
    interval = np.stack([_quantiles(values, level) for level in levels])
    return np.where(np.isfinite(theta) & (counts > 0), interval, np.nan)


def student_t_quantile(level: float, dof: np.ndarray) -> np.ndarray:
    """Student's t quantile at ``level`` (0.5 < level < 1) for each (real) ν ≥ 1 of ``dof``.

    With t = √ν tan θ, the CDF is ½ + c_ν ∫₀^θ cos^(ν−1) φ dφ, c_ν = Γ((ν+1)/2)/(√π Γ(ν/2));
    the integral is tabulated by the trapezoid rule and inverted by interpolation. ν below
    1 is taken as 1 (a Cauchy quantile: the widest there is for finite data).

    Example:
        >>> student_t_quantile(0.975, np.array([1.0, 15.0, 1e6])).round(3).tolist()
        [12.706, 2.131, 1.96]
    """
    nus = np.maximum(np.asarray(dof, dtype=float), 1.0)
    out = np.full(nus.shape, _NORMAL.inv_cdf(level))
    tabulated = np.isfinite(nus) & (nus <= 1e5)
    values = nus[tabulated]
    quantiles = [
        _tabulated_t_quantile(level, values[i : i + 256]) for i in range(0, values.size, 256)
    ]
    if quantiles:
        out[tabulated] = np.concatenate(quantiles)
    return out


def _tabulated_t_quantile(level: float, nus: np.ndarray) -> np.ndarray:
    """:func:`student_t_quantile` of ``(K,)`` finite ν ≥ 1, tabulated together.

    One ν at a time took ~1 ms, mostly NumPy call overhead; K at once take ~20 µs each
    (K ≤ 256 keeps the ``(K, 4097)`` table at 8 MiB).
    """
    nu = nus[:, None]
    density = np.cos(_ANGLES) ** (nu - 1.0)
    step = _ANGLES[1] - _ANGLES[0]
    area = np.cumsum(0.5 * step * (density[:, 1:] + density[:, :-1]), axis=1)
    area = np.concatenate((np.zeros_like(nu), area), axis=1)
    log_ratio = [math.lgamma(0.5 * (v + 1.0)) - math.lgamma(0.5 * v) for v in nus]
    scale = np.exp(log_ratio) / math.sqrt(math.pi)
    angles = [np.interp(level - 0.5, c * row, _ANGLES) for c, row in zip(scale, area, strict=True)]
    return np.sqrt(nus) * np.tan(angles)


def jackknife_t_interval(
    estimate: np.ndarray,
    leave_one_out: Sequence[np.ndarray],
    confidence: float,
    *,
    log: bool,
) -> np.ndarray:
    """``(2, F)`` jackknife-t intervals about ``(F,)`` estimates (formula in the module).

    Args:
        estimate: θ̂ of each entry, from all the data.
        leave_one_out: Per independent sample, ``(n_k, F)`` θ with each unit left out.
        confidence: Level of the intervals, in (0, 1).
        log: Build the interval on ln θ (for a positive θ, such as a variance ratio); an
            entry with θ̂ ≤ 0 or a leave-one-out value ≤ 0 then has a NaN interval.

    Example:
        >>> jack = [np.array([[0.9], [1.1], [1.0]]), np.array([[1.0], [1.05], [0.95]])]
        >>> jackknife_t_interval(np.array([1.0]), jack, 0.68, log=False).round(3).ravel().tolist()
        [0.846, 1.154]
    """
    theta = np.asarray(estimate, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = np.log(theta) if log else theta
        parts = []
        counts = []
        for values in leave_one_out:
            scaled = np.log(values) if log else np.asarray(values, dtype=float)
            n = scaled.shape[0]
            deviations = scaled - scaled.mean(axis=0)
            parts.append((n - 1) / n * np.sum(deviations**2, axis=0))
            counts.append(n)
        variance = np.sum(parts, axis=0)
        dof = variance**2 / np.sum(
            [v**2 / (n - 1) for v, n in zip(parts, counts, strict=True)], axis=0
        )
    usable = np.isfinite(centre) & np.isfinite(variance) & (min(counts) >= 2)
    t = student_t_quantile(0.5 * (1.0 + confidence), np.where(usable & np.isfinite(dof), dof, 1.0))
    # Every leave-one-out value equal (a set compared with itself, entry by entry): SE 0.
    half = t * np.sqrt(np.where(usable, variance, 0.0))
    bounds = np.stack([centre - half, centre + half])
    if log:
        bounds = np.exp(bounds)
    return np.where(usable, bounds, np.nan)


def nonnegative_jackknife_t_interval(
    estimate: np.ndarray, leave_one_out: Sequence[np.ndarray], confidence: float
) -> np.ndarray:
    """:func:`jackknife_t_interval` of a θ ≥ 0: on ln θ where θ̂ stands clear of 0, else on
    θ with the lower end held at 0.

    On ln θ an interval stays positive and follows a skewed θ, but a θ̂ near 0 whose
    leave-one-out values span decades (an SSC prediction of a statistic blind to the patch
    mean: 10⁻⁷ to 10⁻³) gets an upper end orders of magnitude above all of them. Where the
    interval on θ reaches 0 or below, θ̂ is not clear of 0 and that interval is given.

    Example:
        >>> near_zero = [np.array([[1e-7], [1e-3], [2e-4]]), np.array([[5e-4], [1e-6], [3e-4]])]
        >>> low, high = nonnegative_jackknife_t_interval(np.array([2e-4]), near_zero, 0.68)
        >>> float(low[0]), bool(high[0] < 2e-3)
        (0.0, True)
    """
    linear = jackknife_t_interval(estimate, leave_one_out, confidence, log=False)
    logarithmic = jackknife_t_interval(estimate, leave_one_out, confidence, log=True)
    with np.errstate(invalid="ignore"):
        clear = linear[0] > 0
    return np.where(clear, logarithmic, np.stack([np.maximum(linear[0], 0.0), linear[1]]))
