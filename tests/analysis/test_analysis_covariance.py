"""Ensemble summaries across realisations: mean, std, covariance, correlation, SSC ratio."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lensing_ssc.analysis import (
    covariance_ratio,
    stack_patch_statistics,
    summarize,
    summarize_statistics,
)
from lensing_ssc.core.base.exceptions import AnalysisError


def test_summary_matches_numpy_reference(rng: np.random.Generator) -> None:
    """Mean, std (ddof 1), covariance and correlation equal numpy's mean/std/cov/corrcoef."""
    samples = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    summary = summarize(samples)
    np.testing.assert_allclose(summary.mean, samples.mean(axis=0))
    np.testing.assert_allclose(summary.std, samples.std(axis=0, ddof=1))
    np.testing.assert_allclose(summary.covariance, np.cov(samples, rowvar=False))
    np.testing.assert_allclose(summary.correlation, np.corrcoef(samples, rowvar=False))
    assert summary.n_realisations == 50


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 8), st.integers(1, 5)), elements=finite))
def test_covariance_is_symmetric_psd_and_correlation_bounded(samples: np.ndarray) -> None:
    """For any data: C is symmetric positive semi-definite; |r| ≤ 1 and r_ii = 1 where σ_i > 0."""
    summary = summarize(samples)
    cov = summary.covariance
    np.testing.assert_allclose(cov, cov.T)
    scale = max(1.0, float(np.abs(cov).max()))
    assert np.linalg.eigvalsh(cov).min() > -1e-9 * scale
    varying = summary.std > 1e-9 * max(1.0, float(np.abs(samples).max()))
    corr = summary.correlation[np.ix_(varying, varying)]
    assert np.all(np.abs(corr) <= 1 + 1e-9)
    np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-9)


def test_constant_entries_get_nan_correlation_and_json_null() -> None:
    """A never-varying entry (e.g. an empty peak bin) has NaN correlations, None in to_dict."""
    summary = summarize([[1.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    assert np.isnan(summary.correlation[1]).all()
    status = json.loads(json.dumps(summary.to_dict()))
    assert status["correlation"][0] == [1.0, None]
    assert status["n_realisations"] == 3


def test_covariance_ratio_diagonal_is_the_variance_ratio(rng: np.random.Generator) -> None:
    """covariance_ratio of 2σ-scaled samples over the originals is 4 everywhere nonzero."""
    base = rng.normal(size=(30, 3))
    ratio = covariance_ratio(summarize(2 * base), summarize(base))
    np.testing.assert_allclose(ratio, 4.0)


def test_covariance_ratio_marks_division_by_zero_as_nan() -> None:
    """Where the denominator covariance is 0, the ratio is NaN (not inf, no warning)."""
    constant = summarize([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    varying = summarize([[1.0, 4.0], [2.0, 5.0], [3.0, 7.0]])
    ratio = covariance_ratio(varying, constant)
    assert np.isnan(ratio[1, 1])
    assert np.isnan(ratio[0, 1])
    assert ratio[0, 0] == pytest.approx(1.0)


def test_mismatched_covariances_are_rejected(rng: np.random.Generator) -> None:
    """Comparing statistics of different lengths raises AnalysisError with both shapes."""
    with pytest.raises(AnalysisError, match=r"different shapes \(2, 2\) and \(3, 3\)"):
        covariance_ratio(summarize(rng.normal(size=(5, 2))), summarize(rng.normal(size=(5, 3))))


@pytest.mark.parametrize("samples", [[[1.0, 2.0]], [], [[1.0], [np.nan]]])
def test_too_few_or_non_finite_realisations_are_rejected(samples: list) -> None:
    """One realisation, none, or NaNs raise AnalysisError saying what to do."""
    with pytest.raises(AnalysisError, match=r"at least 2 realisations|NaN"):
        summarize(samples)


def test_stacking_patch_results_and_summarising_by_key() -> None:
    """Per-patch dicts stack into (R, F) arrays per key, summarised key by key."""
    results = [{"cl/ngal=0": np.array([1.0, 2.0]), "pdf": np.array([[0.5]])} for _ in range(3)]
    results[1] = {"cl/ngal=0": np.array([3.0, 2.0]), "pdf": np.array([[0.7]])}
    stacked = stack_patch_statistics(results)
    assert stacked["cl/ngal=0"].shape == (3, 2)
    assert stacked["pdf"].shape == (3, 1)
    summaries = summarize_statistics(stacked)
    assert summaries["cl/ngal=0"].mean.tolist() == pytest.approx([5 / 3, 2.0])


def test_stacking_results_with_different_keys_or_lengths_is_rejected() -> None:
    """Results from different settings cannot be stacked: AnalysisError names the problem."""
    with pytest.raises(AnalysisError, match="different keys"):
        stack_patch_statistics([{"a": np.zeros(2)}, {"b": np.zeros(2)}])
    with pytest.raises(AnalysisError, match="different lengths"):
        stack_patch_statistics([{"a": np.zeros(2)}, {"a": np.zeros(3)}])
    with pytest.raises(AnalysisError, match="no patch results"):
        stack_patch_statistics([])
