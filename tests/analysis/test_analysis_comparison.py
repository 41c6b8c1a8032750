"""Comparing two patch sets: Hartlap factor, S/N, SSC response and intervals over maps."""

from __future__ import annotations

import numpy as np
import pytest

from lensing_ssc.analysis.comparison import (
    IntervalKind,
    compare_sets,
    hartlap_factor,
    map_bootstrap,
    setting_groups,
    signal_to_noise,
    ssc_response,
)
from lensing_ssc.core.base.exceptions import AnalysisError


def test_hartlap_factor_is_n_minus_p_minus_2_over_n_minus_1() -> None:
    """h = (N − p − 2)/(N − 1) for N > p + 2."""
    assert hartlap_factor(50, 10) == pytest.approx(38 / 49)
    assert hartlap_factor(13, 10) == pytest.approx(1 / 12)


def test_hartlap_factor_refuses_n_at_most_p_plus_2() -> None:
    """N ≤ p + 2 raises AnalysisError carrying N and a hint."""
    with pytest.raises(AnalysisError, match="N > p \\+ 2 = 12") as info:
        hartlap_factor(12, 10)
    assert info.value.value == 12
    assert info.value.hint


def test_signal_to_noise_matches_a_direct_computation_with_known_covariance() -> None:
    """S/N of Gaussian vectors equals √(h μ̂ᵀĈ⁻¹μ̂) computed directly, and is near √(μᵀC⁻¹μ)."""
    rng = np.random.default_rng(3)
    p, n = 5, 4000
    a = rng.normal(size=(p, p))
    covariance = a @ a.T + p * np.eye(p)
    mean = rng.normal(size=p)
    samples = rng.multivariate_normal(mean, covariance, size=n)
    mu = samples.mean(axis=0)
    direct = mu @ np.linalg.solve(np.cov(samples, rowvar=False), mu) * (n - p - 2) / (n - 1)
    assert signal_to_noise(samples) == pytest.approx(np.sqrt(direct), rel=1e-9)
    truth = np.sqrt(mean @ np.linalg.solve(covariance, mean))
    # The estimator's scatter is ≈ 1/√n per unit of (S/N)² plus the mean's own noise.
    assert signal_to_noise(samples) == pytest.approx(truth, abs=0.05 + 3 * np.sqrt(p / n))


def test_hartlap_factor_removes_the_bias_of_the_inverse_sample_covariance() -> None:
    """Averaged over many small samples, h μᵀĈ⁻¹μ (μ known) matches μᵀC⁻¹μ; without h it is high."""
    rng = np.random.default_rng(4)
    p, n, trials = 8, 20, 2000
    mean = np.full(p, 0.5)
    raw = []
    for _ in range(trials):
        samples = rng.normal(size=(n, p))
        raw.append(mean @ np.linalg.solve(np.cov(samples, rowvar=False), mean))
    truth = mean @ mean
    corrected = hartlap_factor(n, p) * np.mean(raw)
    assert corrected == pytest.approx(truth, rel=0.05)
    assert np.mean(raw) > 1.5 * truth


def test_signal_to_noise_refuses_too_few_patches() -> None:
    """Five patches of a 4-entry vector (N ≤ p + 2) raise AnalysisError."""
    with pytest.raises(AnalysisError, match="Hartlap"):
        signal_to_noise(np.random.default_rng(0).normal(size=(5, 4)))


def test_ssc_response_recovers_a_known_slope() -> None:
    """Entries built as R κ̄ + noise give slopes R within their standard error."""
    rng = np.random.default_rng(5)
    kappa = rng.normal(0, 0.01, size=2000)
    slopes = np.array([0.0, 50.0, -20.0])
    samples = kappa[:, None] * slopes + rng.normal(size=(2000, 3))
    error = 1.0 / (kappa.std() * np.sqrt(2000))
    np.testing.assert_allclose(ssc_response(samples, kappa), slopes, atol=4 * error)


def test_map_bootstrap_keeps_the_patches_of_a_map_together() -> None:
    """Every resample holds whole maps: each drawn map brings all of its rows, none alone."""
    groups = ["a"] * 3 + ["b"] * 2 + ["c"] * 4
    for rows in map_bootstrap(groups, 50, np.random.default_rng(0)):
        counts = {g: sum(groups[i] == g for i in rows) for g in "abc"}
        sizes = {"a": 3, "b": 2, "c": 4}
        assert all(counts[g] % sizes[g] == 0 for g in "abc")


def test_setting_groups_join_fourier_and_map_statistics_of_one_setting() -> None:
    """cl at ngal=30 joins the map statistics at ngal=30 of each smoothing; ngal=0 stands alone."""
    keys = ["cl/ngal=0", "cl/ngal=30", "peaks/ngal=30/smoothing=2", "pdf/ngal=30/smoothing=5"]
    assert setting_groups(keys) == {
        "ngal=30/smoothing=2": ["cl/ngal=30", "peaks/ngal=30/smoothing=2"],
        "ngal=30/smoothing=5": ["cl/ngal=30", "pdf/ngal=30/smoothing=5"],
        "ngal=0": ["cl/ngal=0"],
    }


def _gaussian_set(rng: np.random.Generator, n_maps: int, per_map: int) -> np.ndarray:
    return rng.normal(size=(n_maps * per_map, 4))


def test_the_same_realisations_give_ratio_intervals_containing_one() -> None:
    """A set compared with itself has ratio 1 exactly, inside every bin's interval."""
    rng = np.random.default_rng(6)
    rows = _gaussian_set(rng, 20, 8)
    maps = np.repeat(np.arange(20), 8)
    result = compare_sets(
        {"x": rows}, {"x": rows}, numerator_maps=maps, denominator_maps=maps, rng=rng
    )
    compared = result.statistics["x"]
    np.testing.assert_allclose(compared.variance_ratio, 1.0)
    low, high = compared.variance_ratio_interval
    assert np.all(low < 1)
    assert np.all(high > 1)
    assert (result.n_resamples, result.confidence, result.n_maps) == (200, 0.68, (20, 20))


def test_identical_patches_of_a_map_give_the_interval_of_one_patch_per_map() -> None:
    """Eight copies of each map's patch give the same interval as one patch per map."""
    rng = np.random.default_rng(7)
    one = {"x": rng.normal(size=(40, 3))}
    other = {"x": rng.normal(size=(40, 3))}
    maps = np.arange(40)
    copies = {"x": np.repeat(one["x"], 8, axis=0)}
    copied_maps = np.repeat(maps, 8)
    single = compare_sets(
        one, other, numerator_maps=maps, denominator_maps=maps, rng=np.random.default_rng(1)
    )
    repeated = compare_sets(
        copies,
        other,
        numerator_maps=copied_maps,
        denominator_maps=maps,
        rng=np.random.default_rng(1),
    )
    width = np.diff(single.statistics["x"].variance_ratio_interval, axis=0)
    width_copies = np.diff(repeated.statistics["x"].variance_ratio_interval, axis=0)
    # Same maps drawn; the only difference is ddof = 1 over 320 rows instead of 40:
    # Var(copies) = Var(single) · (8 · 39) / 319 in every resample.
    np.testing.assert_allclose(width_copies, width * 8 * 39 / 319, rtol=1e-9)
    # Resampling patches instead (each copy its own map) would give a far narrower interval.
    by_patch = compare_sets(
        copies,
        other,
        numerator_maps=np.arange(320),
        denominator_maps=maps,
        rng=np.random.default_rng(1),
    )
    by_patch_low, by_patch_high = by_patch.statistics["x"].variance_ratio_interval
    single_low, single_high = single.statistics["x"].variance_ratio_interval
    assert np.all(by_patch_high - by_patch_low < 0.8 * (single_high - single_low))


def test_predicted_ssc_variance_matches_the_excess_a_known_response_adds() -> None:
    """s = R κ̄ + noise over s = noise: predicted Cov(s, κ̄)²/Var κ̄ is consistent with the excess."""
    rng = np.random.default_rng(8)
    n_maps, per_map = 200, 4
    kappa = rng.normal(0, 0.02, size=n_maps * per_map)
    slopes = np.array([0.0, 40.0, 80.0])
    top = kappa[:, None] * slopes + rng.normal(size=(n_maps * per_map, 3))
    bottom = rng.normal(size=(n_maps * per_map, 3))
    maps = np.repeat(np.arange(n_maps), per_map)
    compared = compare_sets(
        {"x": top},
        {"x": bottom},
        numerator_maps=maps,
        denominator_maps=maps,
        rng=rng,
        patch_mean=kappa,
        confidence=0.95,
    ).statistics["x"]
    assert compared.ssc_predicted is not None
    assert compared.ssc_difference_interval is not None
    covariance = ((top - top.mean(axis=0)) * (kappa - kappa.mean())[:, None]).sum(axis=0) / (
        len(kappa) - 1
    )
    direct = covariance**2 / kappa.var(ddof=1) / bottom.var(axis=0, ddof=1)
    np.testing.assert_allclose(compared.ssc_predicted, direct, rtol=1e-10)
    np.testing.assert_allclose(compared.ssc_measured, compared.variance_ratio - 1, rtol=1e-12)
    low, high = compared.ssc_difference_interval
    assert np.all(low < 0)
    assert np.all(high > 0)


def test_compare_sets_reports_nan_signal_to_noise_where_patches_are_too_few() -> None:
    """With N ≤ p + 2 the S/N and Hartlap factor are NaN, not a number from a bad inverse."""
    rng = np.random.default_rng(9)
    rows = rng.normal(size=(6, 5))
    compared = compare_sets(
        {"x": rows}, {"x": rows}, numerator_maps=range(6), denominator_maps=range(6), rng=rng
    ).statistics["x"]
    assert np.all(np.isnan(compared.signal_to_noise))
    assert np.all(np.isnan(compared.hartlap))


def test_a_number_two_statistics_share_counts_once_in_the_joint_signal_to_noise() -> None:
    """The squeezed bispectrum's first bin is the equilateral one: the joint S/N of a
    setting holding both is that of the vector with it once, not NaN from a singular
    covariance, and its interval is a real one."""
    rng = np.random.default_rng(13)
    maps = np.repeat(np.arange(16), 10)

    def sets() -> dict[str, np.ndarray]:
        equilateral = rng.normal(1.0, 1.0, size=(160, 3))
        squeezed = np.c_[equilateral[:, 0], rng.normal(0.5, 1.0, size=(160, 2))]
        peaks = rng.normal(2.0, 1.0, size=(160, 2))
        return {
            "bispectrum_equilateral/ngal=0": equilateral,
            "bispectrum_squeezed/ngal=0": squeezed,
            "peaks/ngal=0/smoothing=2": peaks,
        }

    top, bottom = sets(), sets()
    result = compare_sets(top, bottom, numerator_maps=maps, denominator_maps=maps, rng=rng)
    joint = result.joint["ngal=0/smoothing=2"]
    vector = np.concatenate([top[k] for k in top], axis=1)
    assert joint.signal_to_noise[0] == pytest.approx(signal_to_noise(np.delete(vector, 3, axis=1)))
    assert np.all(np.isfinite(joint.signal_to_noise_interval))
    assert joint.hartlap[0] == pytest.approx(hartlap_factor(160, 7))


def test_compare_sets_is_reproducible_from_its_seed() -> None:
    """The same seed gives the same bootstrap intervals, another seed other ones; the
    jackknife's ratio intervals do not depend on the seed."""
    rows = np.random.default_rng(10).normal(size=(60, 3))
    maps = np.repeat(np.arange(15), 4)

    def intervals(seed: int, kind: IntervalKind) -> tuple[np.ndarray, np.ndarray]:
        result = compare_sets(
            {"x": rows},
            {"x": rows[::-1]},
            numerator_maps=maps,
            denominator_maps=maps,
            rng=np.random.default_rng(seed),
            interval=kind,
        ).statistics["x"]
        return result.variance_ratio_interval, result.signal_to_noise_interval

    for kind in ("percentile", "bca"):
        np.testing.assert_array_equal(intervals(1, kind)[0], intervals(1, kind)[0])
        assert not np.array_equal(intervals(1, kind)[0], intervals(2, kind)[0])
    (ratio_1, sn_1), (ratio_2, sn_2) = intervals(1, "jackknife"), intervals(2, "jackknife")
    np.testing.assert_array_equal(ratio_1, ratio_2)
    assert not np.array_equal(sn_1, sn_2)


def _control_sets(
    rng: np.random.Generator, n_maps: int, per_map: int, width: int, shared: float
) -> np.ndarray:
    """Rows of a Gaussian control: each map adds a shared part of variance ``shared``."""
    common = rng.normal(size=(n_maps, 1, width)) * np.sqrt(shared)
    own = rng.normal(size=(n_maps, per_map, width)) * np.sqrt(1.0 - shared)
    return (common + own).reshape(n_maps * per_map, width)


def _miss_rate(trials: int, kinds: tuple[IntervalKind, ...], n_resamples: int) -> dict[str, float]:
    """How often 95 % intervals of two sets of 16 maps × 16 patches with ratio 1 miss 1."""
    width = 4
    misses = dict.fromkeys(kinds, 0)
    maps = np.repeat(np.arange(16), 16)
    for trial in range(trials):
        rng = np.random.default_rng([trial, 31])
        top, bottom = (_control_sets(rng, 16, 16, width, 0.2) for _ in range(2))
        for kind in kinds:
            low, high = (
                compare_sets(
                    {"x": top},
                    {"x": bottom},
                    numerator_maps=maps,
                    denominator_maps=maps,
                    rng=np.random.default_rng([trial, 1]),
                    n_resamples=n_resamples,
                    confidence=0.95,
                    interval=kind,
                )
                .statistics["x"]
                .variance_ratio_interval
            )
            misses[kind] += int(np.sum((low > 1) | (high < 1)))
    return {kind: count / (trials * width) for kind, count in misses.items()}


def test_jackknife_intervals_over_16_maps_miss_a_true_ratio_about_as_often_as_stated() -> None:
    """Gaussian control, 200 trials of 16 + 16 maps: the 95 % intervals miss 1 in 3–7.5 %.

    (4.9 % measured here; 800 intervals give the rate to ±0.8 %. The bootstrap's miss in
    8–10 %: the slow test below.)
    """
    rate = _miss_rate(200, ("jackknife",), n_resamples=2)["jackknife"]
    assert 0.03 <= rate <= 0.075, rate


@pytest.mark.slow
def test_bootstrap_intervals_over_16_maps_miss_more_often_than_the_jackknife() -> None:
    """Gaussian control, 600 trials: the percentile and BCa intervals miss 1 in over 7 % of
    trials, the jackknife-t in 4–6.5 % (measured: 8.1 %, 10.1 % and 4.9 %)."""
    rates = _miss_rate(600, ("jackknife", "bca", "percentile"), n_resamples=200)
    assert 0.04 <= rates["jackknife"] <= 0.065, rates
    assert rates["percentile"] > 0.07, rates
    assert rates["bca"] > 0.07, rates
    assert rates["jackknife"] < min(rates["percentile"], rates["bca"]), rates


def test_an_unknown_interval_kind_is_refused() -> None:
    """``interval="studentized"`` is an AnalysisError naming the value."""
    rows = np.random.default_rng(12).normal(size=(12, 2))
    with pytest.raises(AnalysisError, match="interval must be 'jackknife', 'bca' or") as caught:
        compare_sets(
            {"x": rows},
            {"x": rows},
            numerator_maps=range(12),
            denominator_maps=range(12),
            rng=np.random.default_rng(0),
            interval="studentized",  # type: ignore[arg-type]
        )
    assert caught.value.value == "studentized"


def test_ssc_intervals_follow_the_kind_and_the_measured_one_is_the_ratios_less_one() -> None:
    """Every kind gives ordered SSC intervals; measured excess = ratio − 1, interval too."""
    rng = np.random.default_rng(13)
    kappa = rng.normal(0, 0.02, size=160)
    top = kappa[:, None] * np.array([0.0, 60.0]) + rng.normal(size=(160, 2))
    bottom = rng.normal(size=(160, 2))
    maps = np.repeat(np.arange(40), 4)
    for kind in ("jackknife", "bca", "percentile"):
        compared = compare_sets(
            {"x": top},
            {"x": bottom},
            numerator_maps=maps,
            denominator_maps=maps,
            rng=np.random.default_rng(3),
            patch_mean=kappa,
            interval=kind,
        ).statistics["x"]
        assert compared.ssc_measured_interval is not None
        assert compared.ssc_predicted_interval is not None
        assert compared.ssc_difference_interval is not None
        np.testing.assert_allclose(
            compared.ssc_measured_interval, compared.variance_ratio_interval - 1.0
        )
        for low, high in (
            compared.ssc_predicted_interval,
            compared.ssc_difference_interval,
            compared.variance_ratio_interval,
        ):
            assert np.all(low <= high), kind
