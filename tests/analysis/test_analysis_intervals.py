"""Intervals over maps: Student's t quantiles, jackknife-t, and the bootstrap's BCa."""

from __future__ import annotations

import numpy as np
import pytest

from lensing_ssc.analysis._intervals import (
    acceleration,
    bca_interval,
    jackknife_t_interval,
    nonnegative_jackknife_t_interval,
    percentile_interval,
    student_t_quantile,
)


def test_student_t_quantiles_match_the_tables() -> None:
    """t_ν at 0.975 (tables) and 0.84 (the t CDF integrated directly) for ν = 1, 2, 5, 30;
    ν < 1 counts as 1, and t falls as ν grows between integers."""
    dof = np.array([1.0, 2.0, 5.0, 30.0])
    np.testing.assert_allclose(
        student_t_quantile(0.975, dof), [12.706, 4.303, 2.571, 2.042], atol=1e-3
    )
    np.testing.assert_allclose(
        student_t_quantile(0.84, dof), [1.8190, 1.3116, 1.1037, 1.0112], atol=2e-4
    )
    assert student_t_quantile(0.975, np.array([0.3]))[0] == pytest.approx(12.706, abs=1e-3)
    halves = student_t_quantile(0.975, np.array([2.5, 3.0, 3.5]))
    assert halves[0] > halves[1] > halves[2]


def test_many_student_t_quantiles_at_once_equal_each_alone_in_the_shape_given() -> None:
    """700 degrees of freedom in a (2, 350) array, with ν → ∞, NaN and ν < 1 among them,
    give each ν's own quantile in place (the tables are built 256 ν at a time)."""
    rng = np.random.default_rng(3)
    dof = rng.uniform(0.5, 80.0, size=(2, 350))
    dof[0, :3] = [np.inf, 2e5, np.nan]
    many = student_t_quantile(0.9, dof)
    alone = np.array([student_t_quantile(0.9, np.array([v]))[0] for v in dof.ravel()])
    assert many.shape == (2, 350)
    np.testing.assert_allclose(many.ravel(), alone, rtol=1e-12)
    assert many[0, 0] == many[0, 1] == many[0, 2] == pytest.approx(1.2816, abs=1e-4)
    assert np.all(many[dof < 1.0] == pytest.approx(3.0777, abs=1e-4))


def test_jackknife_t_is_the_estimate_plus_or_minus_t_times_the_jackknife_error() -> None:
    """Two samples: SE² = Σ (n−1)/n Σ (θ_(j) − θ̄)², Welch's ν, on ln θ when asked."""
    first = np.array([[1.1], [0.9], [1.0], [1.2]])
    second = np.array([[1.0], [1.3], [0.8]])
    estimate = np.array([1.05])
    v1 = 3 / 4 * np.sum((np.log(first) - np.log(first).mean()) ** 2)
    v2 = 2 / 3 * np.sum((np.log(second) - np.log(second).mean()) ** 2)
    dof = (v1 + v2) ** 2 / (v1**2 / 3 + v2**2 / 2)
    half = student_t_quantile(0.95, np.array([dof]))[0] * np.sqrt(v1 + v2)
    low, high = jackknife_t_interval(estimate, [first, second], 0.9, log=True)[:, 0]
    assert low == pytest.approx(1.05 * np.exp(-half), rel=1e-12)
    assert high == pytest.approx(1.05 * np.exp(half), rel=1e-12)


def test_jackknife_t_degenerate_entries() -> None:
    """Equal leave-one-out values give a zero-width interval; on ln, θ ≤ 0 gives NaN."""
    same = np.ones((5, 2))
    interval = jackknife_t_interval(np.array([1.0, -1.0]), [same, same], 0.68, log=True)
    np.testing.assert_array_equal(interval[:, 0], [1.0, 1.0])
    assert np.all(np.isnan(interval[:, 1]))
    linear = jackknife_t_interval(np.array([-1.0]), [-same[:, :1]], 0.68, log=False)
    np.testing.assert_array_equal(linear[:, 0], [-1.0, -1.0])


def test_bca_without_bias_or_skew_is_the_percentile_interval() -> None:
    """Draws symmetric about θ̂ and a symmetric jackknife: z₀ = a = 0, BCa = percentile."""
    draws = np.linspace(-1.0, 1.0, 2001)[:, None] + 3.0
    symmetric = np.array([[2.9], [3.0], [3.1]])
    assert acceleration([symmetric])[0] == 0.0
    np.testing.assert_allclose(
        bca_interval(np.array([3.0]), draws, [symmetric], 0.8),
        percentile_interval(draws, 0.8),
        atol=1e-12,
    )


def test_bca_moves_the_interval_towards_a_skewed_jackknife() -> None:
    """One large leave-one-out value (θ̂ pulled up by one unit): a > 0, the upper end moves up."""
    draws = np.random.default_rng(1).normal(1.0, 0.1, size=(4000, 1))
    skewed = np.array([[1.0], [1.0], [1.0], [1.0], [0.6]])
    assert acceleration([skewed])[0] > 0.05
    plain = percentile_interval(draws, 0.9)
    moved = bca_interval(np.array([1.0]), draws, [skewed], 0.9)
    assert moved[1, 0] > plain[1, 0]
    assert moved[0, 0] > plain[0, 0]


def test_a_nonnegative_quantity_near_zero_gets_an_interval_of_its_own_size() -> None:
    """An SSC prediction of ~2e-4 whose leave-one-out values span 1e-7 to 1e-3 gets
    [0, a few 1e-4] (on ln θ its upper end would be ~30 × the largest of them); one clear
    of 0 gets the interval on ln θ unchanged."""
    near_zero = [np.array([[1e-7], [1e-3], [2e-4], [5e-5]]), np.array([[5e-4], [1e-6], [3e-4]])]
    estimate = np.array([2e-4])
    on_log = jackknife_t_interval(estimate, near_zero, 0.68, log=True)
    low, high = nonnegative_jackknife_t_interval(estimate, near_zero, 0.68)[:, 0]
    assert on_log[1, 0] > 30 * 1e-3
    assert low == 0.0
    assert 2e-4 < high < 2e-3
    clear = [np.array([[1.0], [1.1], [0.9], [1.05]]), np.array([[1.02], [0.97], [1.0]])]
    np.testing.assert_array_equal(
        nonnegative_jackknife_t_interval(np.array([1.0]), clear, 0.68),
        jackknife_t_interval(np.array([1.0]), clear, 0.68, log=True),
    )
