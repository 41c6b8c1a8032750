"""The statistics on a stand-in accelerator: results stay on its device, few host round trips.

array_api_strict's ``Device("device1")`` plays the GPU (``conftest.py``): it refuses to mix
its arrays with those of its default device or with NumPy's, so a table, a constant or a
temporary made without ``device=`` fails these tests. ``device_traffic``
(``tests/analysis/conftest.py``) counts what crosses between host and device: on a GPU each
read back waits for all the work queued before it, so a batch must not read per patch or
per setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    add_shape_noise,
    compute_patch_statistics,
    compute_patch_statistics_batch,
    gaussian_smooth,
    lognormal_field,
)
from lensing_ssc.analysis.statistics import (
    CONFIGURATIONS,
    binned_power_spectrum,
    bispectrum,
    log_ell_edges,
    map_statistics,
    minimum_counts,
    minkowski_functionals,
    pdf,
    peak_counts,
)
from lensing_ssc.analysis.tomography import compute_tomographic_spectra
from lensing_ssc.core.base.exceptions import AnalysisError

from ..conftest import DeviceTraffic
from .conftest import STRICT_DEVICE, on

strict = pytest.importorskip(
    "array_api_strict", reason="array-api-strict stands in for a GPU; the dev extra has it"
)

PIXEL = 2.0
NU_EDGES = np.linspace(-3.0, 3.0, 13)
ELL_EDGES = log_ell_edges(300, 3000, 4)


@pytest.fixture(scope="module")
def fields() -> np.ndarray:
    """Five lognormal 64² patches at 2′ (non-Gaussian, so every statistic is non-trivial)."""
    spectrum = HalofitConvergenceSpectrum()
    return lognormal_field(64, PIXEL, spectrum, np.random.default_rng(7), shift=0.03, n_fields=5)


def _generators(count: int) -> list[np.random.Generator]:
    return [np.random.default_rng([3, i]) for i in range(count)]


ESTIMATORS: dict[str, Callable[[Any], Any]] = {
    "gaussian_smooth": lambda x: gaussian_smooth(x, PIXEL, 3.0),
    "add_shape_noise": lambda x: add_shape_noise(x, PIXEL, 30.0, _generators(x.shape[0])),
    "add_shape_noise, n_gal 0": lambda x: add_shape_noise(x, PIXEL, 0.0, _generators(1)[0]),
    "map_statistics": lambda x: map_statistics(x, PIXEL, NU_EDGES, 0.01),
    "pdf": lambda x: pdf(x, NU_EDGES, 0.01),
    "peak_counts": lambda x: peak_counts(x, NU_EDGES, 0.01),
    "minimum_counts": lambda x: minimum_counts(x, NU_EDGES, 0.01),
    "minkowski_functionals": lambda x: minkowski_functionals(x, PIXEL, NU_EDGES, 0.01),
    "binned_power_spectrum": lambda x: binned_power_spectrum(x, PIXEL, ELL_EDGES),
    **{
        f"bispectrum {name}": (lambda x, name=name: bispectrum(x, PIXEL, ELL_EDGES, name))
        for name in CONFIGURATIONS
    },
    "compute_patch_statistics": lambda x: compute_patch_statistics(
        x[0, ...], PIXEL, StatisticsSettings.quick(), _generators(1)[0]
    ),
    "compute_patch_statistics_batch": lambda x: compute_patch_statistics_batch(
        x, PIXEL, StatisticsSettings.quick(), _generators(x.shape[0])
    ),
    "compute_tomographic_spectra": lambda x: compute_tomographic_spectra(
        x[:3, ...], PIXEL, StatisticsSettings.quick(statistics=["cl"]), _generators(3)
    ),
}


def _arrays(result: Any) -> list[Any]:
    """Every array in ``result`` (an array, a tuple of them or a dict of them)."""
    if isinstance(result, dict):
        return [a for value in result.values() for a in _arrays(value)]
    if isinstance(result, tuple):
        return [a for value in result for a in _arrays(value)]
    return [result]


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_estimator_keeps_its_results_on_the_arrays_device(
    fields: np.ndarray, name: str
) -> None:
    """Each public estimator given arrays on device1 returns array_api_strict arrays there."""
    results = _arrays(ESTIMATORS[name](on(strict, fields)))
    assert results
    for result in results:
        assert type(result) is type(strict.asarray(0.0)), (name, type(result))
        assert result.device == STRICT_DEVICE, name


@pytest.mark.parametrize(
    "settings",
    [StatisticsSettings.quick(), StatisticsSettings(n_nu_bins=8, n_bispectrum_bins=3)],
    ids=["quick", "20 settings"],
)
@pytest.mark.parametrize("count", [2, 5])
def test_a_batch_waits_for_the_device_twice_whatever_its_size(
    fields: np.ndarray, settings: StatisticsSettings, count: int, device_traffic: DeviceTraffic
) -> None:
    """A device stack is read back twice (NaN check, σ check) and sent one copy (its noise),
    for any number of patches and settings; the tables were sent by the first batch."""
    stack = on(strict, fields[:count])
    compute_patch_statistics_batch(stack, PIXEL, settings, _generators(count))
    device_traffic.clear()
    compute_patch_statistics_batch(stack, PIXEL, settings, _generators(count))
    assert len(device_traffic.reads) == 2, device_traffic.reads
    assert [place.split(":")[0] for place in device_traffic.copies] == ["noise.py"]


def test_a_constant_patch_of_a_device_batch_is_refused_after_one_read(
    fields: np.ndarray, device_traffic: DeviceTraffic
) -> None:
    """A stack holding a constant noiseless patch raises AnalysisError (σ = 0): the σ of
    every setting are checked with a single read, after the work was queued."""
    stack = fields[:3].copy()
    stack[1] = 0.02
    settings = StatisticsSettings.quick(n_gal=[0], statistics=("pdf", "v1"))
    with pytest.raises(AnalysisError, match="constant after smoothing") as info:
        compute_patch_statistics_batch(on(strict, stack), PIXEL, settings, _generators(3))
    assert info.value.value == 0.0
    assert len(device_traffic.reads) == 2, device_traffic.reads
