"""The statistics on any array-API namespace, one patch or a stack: the NumPy numbers to 1e-12.

Each test runs on NumPy and on array_api_strict (arrays on its second device, see
``conftest.py``) and compares with NumPy one patch at a time, which the other tests of this
directory check against theory. The last two tests run on CuPy, where there is a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    add_shape_noise,
    compute_patch_statistics,
    compute_patch_statistics_batch,
    gaussian_field,
    gaussian_smooth,
    lognormal_field,
    select_device,
)
from lensing_ssc.analysis._arrays import binned_sums, segment_sums
from lensing_ssc.analysis.statistics import (
    CONFIGURATIONS,
    MAP_STATISTICS,
    binned_power_spectrum,
    bispectrum,
    log_ell_edges,
    map_statistics,
)
from lensing_ssc.analysis.tomography import compute_tomographic_spectra
from lensing_ssc.core.base.exceptions import AnalysisError, ConfigError

from .conftest import assert_close, host, on

PIXEL = 2.0
NU_EDGES = np.linspace(-3.0, 3.0, 13)


@pytest.fixture(scope="module")
def fields() -> np.ndarray:
    """Five lognormal 64² patches at 2′ (non-Gaussian, so every statistic is non-trivial)."""
    spectrum = HalofitConvergenceSpectrum()
    return lognormal_field(64, PIXEL, spectrum, np.random.default_rng(11), shift=0.03, n_fields=5)


def _generators(count: int) -> list[np.random.Generator]:
    return [np.random.default_rng([5, i]) for i in range(count)]


def test_map_statistics_of_a_stack_are_each_maps_own(fields: np.ndarray, xp: Any) -> None:
    """A stack with one σ per map gives, row by row, the statistics of each map alone."""
    smoothed = gaussian_smooth(fields, PIXEL, 4.0)
    sigmas = smoothed.std(axis=(1, 2))
    stacked = map_statistics(on(xp, smoothed), PIXEL, NU_EDGES, sigmas)
    for i, (one, sigma) in enumerate(zip(smoothed, sigmas, strict=True)):
        alone = map_statistics(one, PIXEL, NU_EDGES, float(sigma))
        for name in MAP_STATISTICS:
            assert_close(host(stacked[name])[i], alone[name], name=f"{name}[{i}]")


def test_spectra_of_a_stack_are_each_patchs_own(fields: np.ndarray, xp: Any) -> None:
    """Power spectra and every bispectrum of a stack equal those of each patch (1e-12)."""
    edges = log_ell_edges(300, 3000, 6)
    spectra = binned_power_spectrum(on(xp, fields), PIXEL, edges)
    for i, one in enumerate(fields):
        assert_close(host(spectra)[i], binned_power_spectrum(one, PIXEL, edges), name=f"cl[{i}]")
    bands = log_ell_edges(300, 3000, 4)
    for name in CONFIGURATIONS:
        stacked = host(bispectrum(on(xp, fields), PIXEL, bands, name))
        alone = np.array([bispectrum(one, PIXEL, bands, name) for one in fields])
        assert_close(stacked, alone, name=name)


def test_smoothing_and_noise_of_a_stack_are_each_patchs_own(fields: np.ndarray, xp: Any) -> None:
    """Smoothing a stack smooths each patch; one generator per patch gives each its own noise."""
    smoothed = host(gaussian_smooth(on(xp, fields), PIXEL, 3.0))
    for i, one in enumerate(fields):
        assert_close(smoothed[i], gaussian_smooth(one, PIXEL, 3.0), name=f"smoothed[{i}]")
    noisy = host(add_shape_noise(on(xp, fields), PIXEL, 30.0, _generators(5)))
    for i, (one, rng) in enumerate(zip(fields, _generators(5), strict=True)):
        np.testing.assert_array_equal(noisy[i], add_shape_noise(one, PIXEL, 30.0, rng))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"nu_reference": "map"},
        {"nu_reference": "global", "nu_sigma": [0.01, 0.006], "subtract_patch_mean": False},
        {"n_gal": [0, 7, 15, 30, 50], "smoothing_arcmin": [2, 5, 8, 10]},
    ],
    ids=["noise", "map", "global", "20 settings"],
)
def test_batch_statistics_equal_one_patch_at_a_time(
    fields: np.ndarray, xp: Any, overrides: dict[str, Any]
) -> None:
    """compute_patch_statistics_batch in xp gives each patch's NumPy statistics, noise included."""
    settings = StatisticsSettings.quick(**overrides)
    batch = compute_patch_statistics_batch(on(xp, fields), PIXEL, settings, _generators(5))
    assert list(batch) == list(compute_patch_statistics(fields[0], PIXEL, settings))
    for i, (one, rng) in enumerate(zip(fields, _generators(5), strict=True)):
        alone = compute_patch_statistics(one, PIXEL, settings, rng)
        for key, values in alone.items():
            assert_close(host(batch[key])[i], values, name=f"{key}[{i}]")


def test_one_patch_of_any_namespace_gives_the_numpy_statistics(fields: np.ndarray, xp: Any) -> None:
    """compute_patch_statistics takes an xp patch and returns xp arrays of the NumPy values."""
    settings = StatisticsSettings.quick()
    measured = compute_patch_statistics(on(xp, fields[0]), PIXEL, settings, _generators(1)[0])
    expected = compute_patch_statistics(fields[0], PIXEL, settings, _generators(1)[0])
    for key, values in expected.items():
        assert_close(measured[key], values, name=key)


def test_tomographic_spectra_of_a_redshift_stack_equal_the_numpy_ones(
    fields: np.ndarray, xp: Any
) -> None:
    """Auto and cross spectra of a (Z, n, n) stack in xp equal those of NumPy patches."""
    settings = StatisticsSettings.quick(statistics=["cl"])
    stacked = compute_tomographic_spectra(on(xp, fields[:3]), PIXEL, settings, _generators(3))
    listed = compute_tomographic_spectra(list(fields[:3]), PIXEL, settings, _generators(3))
    for key, values in listed.items():
        assert values.shape == (6, settings.n_ell_bins)
        assert_close(stacked[key], values, name=key)


@pytest.mark.parametrize("block", [1 << 24, 7 * 12])
def test_one_hot_sums_equal_bincount(xp: Any, block: int) -> None:
    """binned_sums' one-hot products (in pixel chunks) give numpy.bincount's per-row sums."""
    rng = np.random.default_rng(3)
    index = rng.integers(0, 12, size=(3, 500))
    weights = rng.normal(size=(3, 2, 500))
    expected = np.stack(
        [
            np.stack([np.bincount(index[r], weights[r, w], minlength=12) for w in range(2)])
            for r in range(3)
        ]
    )
    index_xp = xp.astype(on(xp, index), xp.int64)
    assert_close(binned_sums(index_xp, on(xp, weights), 12, block=block), expected)


def test_segment_sums_add_each_group(xp: Any) -> None:
    """segment_sums adds the columns listed for each group, along the last axis."""
    values = np.arange(12.0).reshape(2, 6)
    order, bounds = np.array([5, 0, 2, 1]), np.array([0, 1, 3, 4])
    for table in (order, bounds):
        table.setflags(write=False)
    expected = np.array([[5.0, 2.0, 1.0], [11.0, 14.0, 7.0]])
    assert_close(segment_sums(on(xp, values), order, bounds), expected)


def test_a_stack_of_the_wrong_shape_is_rejected(xp: Any) -> None:
    """A 4-D array or a stack of non-square patches raises AnalysisError naming the shape."""
    with pytest.raises(AnalysisError, match=r"an \(n_patches, n, n\) stack, got shape"):
        binned_power_spectrum(on(xp, np.zeros((2, 32, 16))), PIXEL, log_ell_edges(300, 3000, 2))
    with pytest.raises(AnalysisError, match=r"got shape \(1, 2, 32, 32\)"):
        gaussian_smooth(on(xp, np.zeros((1, 2, 32, 32))), PIXEL, 2.0)


def test_a_nan_anywhere_in_a_stack_is_counted(xp: Any) -> None:
    """NaNs in a stack raise AnalysisError with their number, whatever the namespace."""
    stack = np.zeros((3, 32, 32))
    stack[1, 0, :5] = np.nan
    with pytest.raises(AnalysisError, match="patches contains 5 NaN") as info:
        compute_patch_statistics_batch(on(xp, stack), PIXEL, StatisticsSettings.quick())
    assert info.value.value == 5


def test_one_sigma_per_map_must_match_the_stack(xp: Any) -> None:
    """A list of σ must have one value per map, each > 0."""
    stack = on(xp, np.ones((3, 16, 16)))
    with pytest.raises(AnalysisError, match=r"one per map \(3\), got shape \(2,\)"):
        map_statistics(stack, PIXEL, NU_EDGES, [1.0, 2.0])
    with pytest.raises(AnalysisError, match="sigma must be > 0"):
        map_statistics(stack, PIXEL, NU_EDGES, [1.0, 0.0, 2.0])


def test_a_batch_needs_one_generator_per_patch(fields: np.ndarray) -> None:
    """Passing fewer generators than patches raises AnalysisError saying how many."""
    with pytest.raises(AnalysisError, match="2 noise generator"):
        compute_patch_statistics_batch(fields, PIXEL, StatisticsSettings.quick(), _generators(2))


def _gpu() -> Any:
    """The GPU device, or skip the test saying what is missing."""
    try:
        device = select_device("gpu")
    except ConfigError as exc:
        pytest.skip(f"no GPU path here: {exc.message}")
    return device


@pytest.mark.gpu
def test_gpu_batch_statistics_equal_the_cpu_ones() -> None:
    """On CuPy, 64 patches of 128² give the NumPy statistics of each patch to 1e-12."""
    device = _gpu()
    settings = StatisticsSettings.quick()
    patches = gaussian_field(
        128, PIXEL, HalofitConvergenceSpectrum(), np.random.default_rng(2), n_fields=64
    )
    measured = compute_patch_statistics_batch(
        device.asarray(patches), PIXEL, settings, _generators(64)
    )
    expected = compute_patch_statistics_batch(patches, PIXEL, settings, _generators(64))
    for key, values in expected.items():
        assert_close(device.to_numpy(measured[key]), values, name=key)


@pytest.mark.gpu
def test_gpu_results_stay_on_the_gpu_until_gathered() -> None:
    """On CuPy every statistic of a batch is a CuPy array on the GPU; gather_columns brings
    them home in one transfer, equal to the NumPy statistics to 1e-12."""
    device = _gpu()
    settings = StatisticsSettings.quick()
    patches = gaussian_field(
        64, PIXEL, HalofitConvergenceSpectrum(), np.random.default_rng(3), n_fields=8
    )
    measured = compute_patch_statistics_batch(
        device.asarray(patches), PIXEL, settings, _generators(8)
    )
    for key, values in measured.items():
        assert type(values).__module__.startswith("cupy"), key
        assert values.device.id == device.device.id, key
    expected = compute_patch_statistics_batch(patches, PIXEL, settings, _generators(8))
    gathered = device.gather_columns(list(measured.values()))
    assert_close(gathered, np.concatenate(list(expected.values()), axis=1))
