"""The Gaussian control of the SSC comparison, with and without each patch's mean subtracted.

Gaussian fields have no mode coupling, so once the patch mean (present in sub-patches, zero in
periodic patches) is subtracted, the map statistics' sub-patch/periodic variance ratio must be
consistent with 1. The tolerance comes from the number of patches: the ratio of two sample
variances of N1 and N2 Gaussian samples scatters by σ ≈ √(2/(N1−1) + 2/(N2−1)); the median
over a statistic's ν bins is held to 1 ± 4σ, and the 95 % intervals over maps must contain 1
about as often as intervals do when nothing differs, at every n_gal. The summary must say
which was done.

Measured (8 seeds of this control, 16 fields; 3 seeds of 64 fields), with the percentile
bootstrap intervals the comparison used before: the 95 % intervals of the mean-subtracted
map statistics missed 1 in 7.8 % of the bins at n_gal = 0 and 7.7 % at n_gal = 30 (16
fields), 8.1 % and 5.6 % (64 fields); with ν divided by one global σ instead of each
patch's RMS, 8.5 % and 9.7 % (16 fields, 8 seeds). So n_gal = 0, where ν is each patch's
own RMS, is not biased: per-patch σ moves no ratio, and the 2–4 points above the nominal
5 % were the percentile bootstrap over 16 maps undercovering. Over 33 seeds (16 fields) the
default jackknife-t intervals miss in 5.1 % (4.5 % at n_gal = 0, 5.6 % at 30), where the
percentile bootstrap missed in 7.8 % and BCa in 8.0 % on the same runs; the slow test below
checks 16 of those seeds. Sparse tail bins, where a whole set holds a handful of peaks (at n_gal = 0
the peaks below ν = −2: 0.01–0.07 per patch), give the most erratic ratios (0.46 and 0.67
in the peaks at σ_s = 5′ of this run, the misses that kept n_gal = 0 out of this test
before) and are left out. Per run the misses of the populated bins, pooled over every map
statistic of an n_gal, ranged from 0 % to 19 % (38 runs and n_gal), as bins of one
statistic move together (V0 is cumulative), and one statistic missed in up to 58 % of its
bins: the test allows 20 % pooled and two thirds per statistic.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.analysis import StatisticsSettings
from lensing_ssc.pipelines import run_patch_statistics
from lensing_ssc.pipelines._summary import nu_description

from .conftest import make_config

_MAP_STATISTICS = ("pdf", "peaks", "minima", "v0", "v1", "v2")
_INTERVALS: dict[str, tuple[np.ndarray, np.ndarray]] = {}
"""Variance-ratio intervals of the mean-subtracted control and its populated bins, per key."""
_POPULATED = 0.25
"""A bin is populated when at least this fraction of the patches of each set has a value in it:
with fewer, a set's variance rests on a handful of peaks or pixels."""


def _control(
    run_dir: Path, n_fields: int, *, subtract: bool
) -> tuple[dict[str, float], float, str]:
    """Median variance ratio per map-statistic key, its tolerance, and the summary text."""
    config = make_config(
        run_dir,
        synthetic={
            "kind": "gaussian",
            "patch_pixels": 128,
            "patches_per_side": 4,
            "n_large_fields": n_fields,
        },
        statistics={"names": ["cl", *_MAP_STATISTICS], "subtract_patch_mean": subtract},
        compare_confidence=0.95,
    )
    run = run_patch_statistics(config)
    sets = run.results.sets
    n1, n2 = sets["subpatches"].n_patches, sets["periodic"].n_patches
    sigma = math.sqrt(2 / (n1 - 1) + 2 / (n2 - 1))
    medians = {}
    for key, diagonal in run.results.ssc_ratio.items():
        if key.split("/")[0] in _MAP_STATISTICS:
            medians[key] = float(np.median(diagonal[np.isfinite(diagonal)]))
    if subtract:
        for key, c in run.results.comparisons[0].compared.statistics.items():
            if key.split("/")[0] in _MAP_STATISTICS:
                populated = np.ones(c.variance_ratio.shape, dtype=bool)
                for summary in sets.values():
                    populated &= (summary.samples[key] != 0).mean(axis=0) >= _POPULATED
                _INTERVALS[key] = (c.variance_ratio_interval, populated)
    return medians, 4 * sigma, run.summary_file.read_text()


@pytest.fixture(scope="module")
def control(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[bool, tuple[dict[str, float], float, str]]:
    """The Gaussian control with 16 large fields (256 patches per set), both ways."""
    root = tmp_path_factory.mktemp("control")
    return {
        subtract: _control(root / str(subtract), 16, subtract=subtract)
        for subtract in (True, False)
    }


def test_gaussian_map_statistic_ratios_are_consistent_with_one_with_the_mean_subtracted(
    control: dict[bool, tuple[dict[str, float], float, str]],
) -> None:
    """Mean subtracted, every map statistic's median variance ratio lies within 1 ± 4σ."""
    medians, tolerance, _ = control[True]
    assert len(medians) == 2 * 2 * len(_MAP_STATISTICS)
    off = {key: value for key, value in medians.items() if abs(value - 1) > tolerance}
    assert not off, f"tolerance {tolerance:.2f}: {off}"


@pytest.mark.parametrize("n_gal", [0, 30])
def test_gaussian_map_statistic_intervals_contain_one_with_the_mean_subtracted(
    control: dict[bool, tuple[dict[str, float], float, str]], n_gal: int
) -> None:
    """Mean subtracted, at every n_gal the 95 % intervals over maps contain 1 as often as
    intervals of sets that do not differ (the module docstring has the measurements).

    Pooled over every populated bin of every map statistic and smoothing at this n_gal, at
    most 20 % of the intervals may miss 1, and at most two thirds of one statistic's.
    """
    assert len(_INTERVALS) == 2 * 2 * len(_MAP_STATISTICS)
    chosen = {key: v for key, v in _INTERVALS.items() if f"/ngal={n_gal}/" in key}
    assert len(chosen) == 2 * len(_MAP_STATISTICS)
    missed = tested = 0
    for key, ((low, high), populated) in chosen.items():
        used = populated & np.isfinite(low) & np.isfinite(high)
        assert used.sum() >= len(low) // 2, key  # the sparse bins left out are the tails
        misses = ~((low[used] <= 1) & (high[used] >= 1))
        assert misses.mean() <= 2 / 3, (key, low, high)
        missed += int(misses.sum())
        tested += int(used.sum())
    assert missed <= 0.2 * tested, f"{missed} of {tested} intervals miss 1"


def test_without_subtraction_the_patch_mean_dominates_the_ratios(
    control: dict[bool, tuple[dict[str, float], float, str]],
) -> None:
    """Mean kept, the PDF and V0–V2 ratios exceed 1 + 4σ: they measure the mean's scatter."""
    medians, tolerance, _ = control[False]
    for name in ("pdf", "v0", "v1", "v2"):
        for key in (k for k in medians if k.startswith(f"{name}/")):
            assert medians[key] > 1 + tolerance, key


def test_the_summary_says_whether_the_mean_was_subtracted_and_what_the_ratio_means(
    control: dict[bool, tuple[dict[str, float], float, str]],
) -> None:
    """The summary names the mean's treatment, ν's σ and reads the map ratios accordingly."""
    subtracted, kept = control[True][2], control[False][2]
    assert "patch mean  each patch's mean subtracted before the PDF" in subtracted
    assert "(patch mean subtracted): > 1: variance from modes larger than the patch" in subtracted
    assert "patch mean  patch mean kept (not subtracted)" in kept
    assert "the ratio measures mostly the scatter of the patch mean" in kept
    assert "map statistics (patch mean kept): > 1" not in kept
    for text in (subtracted, kept):
        assert "spectra (blind to the patch mean): > 1" in text
        assert "for n_gal = 0 (no noise) κ_s/RMS of each patch" in text


def test_nu_description_is_true_for_each_reference() -> None:
    """Noise-only, per-patch and global σ are each described as what they are."""
    only_noisy = nu_description(StatisticsSettings.quick(n_gal=[30]))
    assert only_noisy.startswith("κ_s/σ_noise,s")
    assert "n_gal = 0" not in only_noisy
    assert "each patch" in nu_description(StatisticsSettings.quick(nu_reference="map"))
    shared = nu_description(StatisticsSettings.quick(nu_reference="global", nu_sigma=[0.01, 0.005]))
    assert "one σ for every patch, set and n_gal (0.01 at 2′, 0.005 at 5′)" in shared


@pytest.mark.slow
def test_gaussian_control_with_64_fields_is_consistent_with_one(tmp_path: Path) -> None:
    """With 1024 patches per set the mean-subtracted ratios still lie within 1 ± 4σ (σ ≈ 0.06)."""
    medians, tolerance, _ = _control(tmp_path / "run", 64, subtract=True)
    off = {key: value for key, value in medians.items() if abs(value - 1) > tolerance}
    assert not off, f"tolerance {tolerance:.2f}: {off}"


@pytest.mark.slow
def test_gaussian_control_intervals_over_16_seeds_miss_one_about_as_often_as_stated(
    tmp_path: Path,
) -> None:
    """16 seeds of the control (16 fields): pooled over every populated bin of the map
    statistics, the 95 % intervals miss 1 in 3–7 % (measured 5.6 %; percentile 7.8 %)."""
    missed = tested = 0
    for seed in range(16):
        config = make_config(
            tmp_path / f"run{seed}",
            seed=seed,
            synthetic={
                "kind": "gaussian",
                "patch_pixels": 128,
                "patches_per_side": 4,
                "n_large_fields": 16,
            },
            statistics={"names": ["cl", *_MAP_STATISTICS], "subtract_patch_mean": True},
            compare_confidence=0.95,
        )
        run = run_patch_statistics(config)
        sets = run.results.sets
        for key, c in run.results.comparisons[0].compared.statistics.items():
            if key.split("/")[0] not in _MAP_STATISTICS:
                continue
            low, high = c.variance_ratio_interval
            used = np.isfinite(low) & np.isfinite(high)
            for summary in sets.values():
                used &= (summary.samples[key] != 0).mean(axis=0) >= _POPULATED
            missed += int(np.sum(((low > 1) | (high < 1)) & used))
            tested += int(used.sum())
    assert 0.03 * tested <= missed <= 0.07 * tested, f"{missed} of {tested} intervals miss 1"
