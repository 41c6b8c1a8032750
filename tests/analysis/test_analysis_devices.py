"""select_device and ArrayDevice: names, the CPU, batch sizes, and host noise for a stack."""

from __future__ import annotations

import numpy as np
import pytest

from lensing_ssc.analysis import ArrayDevice, select_device
from lensing_ssc.analysis.devices import CPU_DEVICE, GPU_EXTRAS
from lensing_ssc.analysis.noise import unit_noise
from lensing_ssc.core.base.exceptions import ConfigError


def test_cpu_is_numpy_without_a_memory_bound() -> None:
    """'cpu' is NumPy on the host: arrays pass unchanged and patches go one by one."""
    device = select_device("cpu")
    assert device is CPU_DEVICE
    assert device.is_cpu
    values = np.ones((2, 8, 8))
    assert device.asarray(values) is values
    assert device.to_numpy(values) is values
    assert device.batch_size(1000) is None


def test_batch_size_is_half_the_free_memory_over_a_patch() -> None:
    """A device with 10 MB free sends 5 patches of 1 MB at once, and at least one patch."""
    device = ArrayDevice("test", np, None, "a test device", lambda: 10_000_000)
    assert device.batch_size(1_000_000) == 5
    assert device.batch_size(50_000_000) == 1
    assert device.to_dict() == {"name": "test", "description": "a test device"}


def test_an_unknown_device_name_is_a_config_error() -> None:
    """'tpu' raises ConfigError naming the setting and the names allowed."""
    with pytest.raises(ConfigError, match="unknown device 'tpu'") as info:
        select_device("tpu", setting="pipeline.device")
    assert info.value.field == "pipeline.device"
    assert "cpu, gpu, auto" in str(info.value)


def test_gpu_without_cupy_names_both_extras_and_auto_falls_back() -> None:
    """Without CuPy (or a device), 'gpu' is a ConfigError naming the extras; 'auto' is the CPU."""
    if select_device("auto").name == "gpu":
        pytest.skip("this machine has CuPy and a GPU")
    with pytest.raises(ConfigError, match="device 'gpu' needs") as info:
        select_device("gpu")
    assert all(extra in str(info.value) for extra in GPU_EXTRAS)
    assert select_device("auto") is CPU_DEVICE


def test_a_large_stack_draws_each_maps_noise_from_its_own_generator() -> None:
    """40 maps, drawn by threads: map i is exactly rngs[i].standard_normal((n, n))."""
    noise = unit_noise([np.random.default_rng([3, i]) for i in range(40)], 16)
    expected = [np.random.default_rng([3, i]).standard_normal((16, 16)) for i in range(40)]
    np.testing.assert_array_equal(noise, np.stack(expected))
