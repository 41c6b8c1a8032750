"""Moments of a reweighting of a set's maps, from each map's sums, against the patches'."""

from __future__ import annotations

import numpy as np

from lensing_ssc.analysis._map_sums import MapSums, chi2_of, chi2_of_moments, chi2_of_stack
from lensing_ssc.analysis.comparison import signal_to_noise


def _rows(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """12 maps of 5 patches, 4 entries (offset far from 0, one constant), and patch means."""
    maps = np.repeat(np.arange(12), 5)
    rows = rng.normal(size=(60, 4)) * [1.0, 2.0, 1e-3, 0.0] + [1e3, -5.0, 1e-2, 7.0]
    kappa = rng.normal(0.0, 0.01, size=60)
    rows[:, 1] += 40.0 * kappa
    return rows, maps, kappa


def test_reweighted_moments_equal_those_of_the_repeated_patches() -> None:
    """Weights 0–3 per map give the variances, κ̄ covariances and χ² of the rows repeated so."""
    rng = np.random.default_rng(4)
    rows, maps, kappa = _rows(rng)
    sums = MapSums(rows, maps, {"all": slice(0, 4), "two": np.array([0, 1])}, kappa)
    weights = rng.integers(0, 4, size=12)
    taken = np.concatenate(
        [np.flatnonzero(maps == m) for m in range(12) for _ in range(weights[m])]
    )
    chosen, k = rows[taken], kappa[taken]
    moments = sums.moments(weights)
    assert moments.n == len(taken)
    np.testing.assert_allclose(moments.variance, chosen.var(axis=0, ddof=1), rtol=1e-9, atol=0)
    assert moments.variance[3] == 0.0
    assert moments.kappa_variance is not None
    assert moments.kappa_covariance is not None
    np.testing.assert_allclose(moments.kappa_variance, k.var(ddof=1), rtol=1e-10)
    direct = (chosen - chosen.mean(axis=0)).T @ (k - k.mean()) / (len(k) - 1)
    np.testing.assert_allclose(moments.kappa_covariance, direct, rtol=1e-9, atol=1e-15)
    chi2, p = moments.chi2("all")
    expected = signal_to_noise(chosen) ** 2 / ((len(taken) - 3 - 2) / (len(taken) - 1))
    assert p == 3
    np.testing.assert_allclose(chi2, expected, rtol=1e-8)
    np.testing.assert_allclose(
        moments.chi2("two")[0],
        chi2_of(chosen[:, :2].mean(axis=0), np.cov(chosen[:, :2], rowvar=False), len(taken))[0],
        rtol=1e-8,
    )


def test_a_map_left_out_is_a_zero_weight() -> None:
    """Leaving map 3 out (weight 0) gives the moments of the other maps' patches."""
    rng = np.random.default_rng(5)
    rows, maps, _ = _rows(rng)
    weights = np.ones(12)
    weights[3] = 0.0
    moments = MapSums(rows, maps, {}).moments(weights)
    rest = rows[maps != 3]
    np.testing.assert_allclose(moments.variance, rest.var(axis=0, ddof=1), rtol=1e-9, atol=0)
    assert moments.kappa_variance is None


def _direct_chi2(mean: np.ndarray, covariance: np.ndarray) -> float:
    """μᵀ C⁻¹ μ over the entries with C_ii > 0, by a plain solve."""
    v = np.diag(covariance) > 0
    return float(mean[v] @ np.linalg.solve(covariance[np.ix_(v, v)], mean[v]))


def test_a_stack_of_resamples_gives_each_ones_chi2_whichever_entries_vary() -> None:
    """χ² of many covariances at once equals each one's, with other constant entries, a
    singular matrix among regular ones, and too few rows, each answered on its own."""
    rng = np.random.default_rng(11)
    means, covariances, n, expected = [], [], [], []
    for r in range(40):
        data = rng.normal(size=(30, 5)) + rng.normal(size=5)
        if r % 4 == 1:
            data[:, r % 5] = 3.0  # one entry constant
        if r % 7 == 3:
            data[:, 4] = data[:, 0] + data[:, 1]  # degenerate: singular
        c = np.cov(data, rowvar=False)
        c[np.abs(c) < 1e-14] = 0.0
        rows = 6.0 if r == 17 else 30.0  # n ≤ p + 2 for one
        means.append(data.mean(axis=0))
        covariances.append(c)
        n.append(rows)
        singular = r % 7 == 3 or rows <= np.count_nonzero(np.diag(c) > 0) + 2
        expected.append(np.nan if singular else _direct_chi2(data.mean(axis=0), c))
    chi2, p = chi2_of_stack(np.array(means), np.array(covariances), np.array(n))
    np.testing.assert_allclose(chi2, expected, rtol=1e-10)
    assert p.tolist() == [int(np.count_nonzero(np.diag(c) > 0)) for c in covariances]
    alone = [chi2_of(m, c, k)[0] for m, c, k in zip(means, covariances, n, strict=True)]
    np.testing.assert_allclose(chi2, alone, rtol=1e-12)


def test_the_resamples_of_one_set_give_each_resamples_own_moments_and_chi2() -> None:
    """50 bootstrap weightings at once: each one's variances, κ̄ terms and χ², as alone."""
    rng = np.random.default_rng(12)
    rows, maps, kappa = _rows(rng)
    sums = MapSums(rows, maps, {"all": slice(0, 4)}, kappa)
    weights = np.array([np.bincount(rng.integers(0, 12, 12), minlength=12) for _ in range(50)])
    stacked = sums.moments(weights)
    chi2, p = chi2_of_moments(stacked, "all")
    assert stacked.variance.shape == (50, 4)
    for r, w in enumerate(weights):
        alone = sums.moments(w)
        assert stacked.n[r] == alone.n
        np.testing.assert_allclose(stacked.variance[r], alone.variance, rtol=1e-12, atol=0)
        np.testing.assert_allclose(stacked.kappa_variance[r], alone.kappa_variance, rtol=1e-12)
        np.testing.assert_allclose(
            stacked.kappa_covariance[r], alone.kappa_covariance, rtol=1e-12, atol=1e-18
        )
        assert p[r] == alone.chi2("all")[1] == 3
        np.testing.assert_allclose(chi2[r], alone.chi2("all")[0], rtol=1e-12)
