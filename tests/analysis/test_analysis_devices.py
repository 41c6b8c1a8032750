"""select_device and ArrayDevice: names, the CPU, another library's device, batch sizes
against the memory a batch really uses, results brought home, host noise for a stack."""

from __future__ import annotations

import logging
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import (
    ArrayDevice,
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    _cuda,
    compute_patch_statistics_batch,
    gaussian_field,
    select_device,
)
from lensing_ssc.analysis._arrays import clear_constants
from lensing_ssc.analysis.devices import CPU_DEVICE, GPU_EXTRAS
from lensing_ssc.analysis.noise import unit_noise
from lensing_ssc.analysis.patch_statistics import working_bytes
from lensing_ssc.core.base.exceptions import ConfigError, ResourceError

from .conftest import DeviceTraffic


def _strict() -> Any:
    return pytest.importorskip(
        "array_api_strict", reason="array-api-strict stands in for a GPU; the dev extra has it"
    )


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
    assert device.batch_size(6_000_000) == 1
    assert device.to_dict() == {"name": "test", "description": "a test device"}


def test_a_patch_larger_than_the_free_memory_is_a_resource_error() -> None:
    """One patch needing more than all the free memory is refused, naming both and the fixes."""
    device = ArrayDevice("test", np, None, "a test device", lambda: 10 * 2**20)
    with pytest.raises(ResourceError) as info:
        device.batch_size(48 * 2**20)
    assert info.value.message == (
        "one patch needs ~48 MiB of working memory, and a test device has 10 MiB free"
    )
    assert info.value.value == 48 * 2**20
    assert "device 'cpu'" in str(info.value)


def test_an_unknown_device_name_is_a_config_error() -> None:
    """'tpu' raises ConfigError naming the setting and the names allowed."""
    with pytest.raises(ConfigError, match="unknown device 'tpu'") as info:
        select_device("tpu", setting="pipeline.device")
    assert info.value.field == "pipeline.device"
    assert "cpu, gpu, auto" in str(info.value)


def test_gpu_without_cupy_names_both_extras_and_auto_falls_back() -> None:
    """Without CuPy, 'gpu' is a ConfigError naming the extras; 'auto' is the CPU, saying why."""
    if _cuda.installed():
        pytest.skip("CuPy is installed here")
    with pytest.raises(ConfigError, match="device 'gpu' needs a usable CUDA GPU") as info:
        select_device("gpu")
    assert info.value.message.endswith("CuPy is not installed")
    assert all(extra in str(info.value) for extra in GPU_EXTRAS)
    auto = select_device("auto")
    assert (auto.name, auto.is_cpu, auto.batch_size(2**20)) == ("cpu", True, None)
    assert auto.description == "NumPy on the CPU (no GPU: CuPy is not installed)"


def _no_driver() -> ArrayDevice:
    """A GPU finder on a node without an NVIDIA driver, as CuPy's says it."""
    raise ConfigError(
        "no NVIDIA driver is loaded (libcuda.so.1 was not found)",
        value=None,
        hint="run on a node with an NVIDIA GPU, where nvidia-smi lists it; or use device 'cpu'",
    )


def test_auto_without_a_usable_gpu_warns_and_measures_on_the_cpu(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """'auto' where the GPU cannot be used logs a warning with the reason and the fix, and
    returns the CPU, whose description keeps the reason for the run's log."""
    with caplog.at_level(logging.INFO, logger="lensing_ssc.analysis"):
        device = select_device("auto", find_gpu=_no_driver)
    assert (device.name, device.is_cpu) == ("cpu", True)
    assert device.description == (
        "NumPy on the CPU (no GPU: no NVIDIA driver is loaded (libcuda.so.1 was not found))"
    )
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "device 'auto' measures on the CPU: no usable GPU, no NVIDIA driver is loaded "
        "(libcuda.so.1 was not found) (run on a node with an NVIDIA GPU, where nvidia-smi "
        "lists it; or use device 'cpu')"
    )


def test_gpu_without_a_usable_gpu_fails_in_one_line_naming_the_problem() -> None:
    """'gpu' where the GPU cannot be used: one ConfigError line, on the setting, with the
    reason and the fix; nothing is chosen instead."""
    with pytest.raises(ConfigError) as info:
        select_device("gpu", setting="pipeline.device", find_gpu=_no_driver)
    error = info.value
    assert (error.field, error.value) == ("pipeline.device", "gpu")
    assert error.message == (
        "device 'gpu' needs a usable CUDA GPU: no NVIDIA driver is loaded "
        "(libcuda.so.1 was not found)"
    )
    assert "where nvidia-smi lists it" in str(error)
    assert "\n" not in str(error)


def test_a_found_gpu_is_what_gpu_and_auto_select() -> None:
    """The device the finder returns is the one 'gpu' and 'auto' select, and 'cpu' never
    asks for it."""
    found = ArrayDevice("gpu", np, None, "a found device", lambda: 10 * 2**20)
    asked: list[str] = []

    def finder() -> ArrayDevice:
        asked.append("asked")
        return found

    assert select_device("gpu", find_gpu=finder) is found
    assert select_device("auto", find_gpu=finder) is found
    assert select_device("cpu", find_gpu=finder) is CPU_DEVICE
    assert asked == ["asked", "asked"]


def test_cupy_without_a_usable_gpu_is_one_line_for_gpu_and_the_cpu_for_auto() -> None:
    """Where CuPy is installed but cannot measure (no driver, no device, no cuFFT, ...):
    'gpu' is one ConfigError line saying why, 'auto' the CPU with the same reason."""
    if not _cuda.installed():
        pytest.skip("CuPy is not installed here (the gpu-cuda12 or gpu-cuda13 extra)")
    problem = _cuda.cuda_problem()
    if problem is None:
        pytest.skip("CuPy can measure on this machine's GPU")
    with pytest.raises(ConfigError) as info:
        select_device("gpu")
    assert info.value.message == f"device 'gpu' needs a usable CUDA GPU: {problem[0]}"
    assert (info.value.hint, "\n" in str(info.value)) == (problem[1], False)
    auto = select_device("auto")
    assert auto.is_cpu
    assert auto.description.endswith(f"(no GPU: {problem[0]})")


def test_the_gpu_benchmark_without_a_gpu_fails_in_one_line() -> None:
    """benchmarks/bench_statistics.py --device gpu on a machine where CuPy cannot measure:
    exit 2, one line saying what is missing and what to do, nothing measured."""
    if _cuda.cuda_problem() is None:
        pytest.skip("this machine has CuPy and a GPU")
    script = Path(__file__).parents[2] / "benchmarks" / "bench_statistics.py"
    done = subprocess.run(
        [sys.executable, str(script), "--device", "gpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bench_statistics.py --device gpu: no GPU to measure: device 'gpu'")
    if not _cuda.installed():
        assert all(extra in lines[0] for extra in GPU_EXTRAS)


def test_a_large_stack_draws_each_maps_noise_from_its_own_generator() -> None:
    """40 maps, drawn by threads: map i is exactly rngs[i].standard_normal((n, n))."""
    noise = unit_noise([np.random.default_rng([3, i]) for i in range(40)], 16)
    expected = [np.random.default_rng([3, i]).standard_normal((16, 16)) for i in range(40)]
    np.testing.assert_array_equal(noise, np.stack(expected))


def test_an_array_device_of_another_library_moves_arrays_there_and_back() -> None:
    """ArrayDevice(namespace, device) sends host arrays to that device and brings them back."""
    strict = _strict()
    device = ArrayDevice("strict", strict, strict.Device("device1"), "array_api_strict")
    values = np.arange(6.0).reshape(2, 3)
    moved = device.asarray(values)
    assert not device.is_cpu
    assert moved.device == strict.Device("device1")
    np.testing.assert_array_equal(device.to_numpy(moved), values)


def test_gather_columns_brings_every_statistic_home_in_one_read(
    device_traffic: DeviceTraffic,
) -> None:
    """Three (rows, k) device arrays come back side by side in one transfer."""
    strict = _strict()
    device = ArrayDevice("strict", strict, strict.Device("device1"))
    parts = [np.full((4, k), float(k)) for k in (3, 1, 5)]
    on_device = [device.asarray(part) for part in parts]
    device_traffic.clear()
    gathered = device.gather_columns(on_device)
    np.testing.assert_array_equal(gathered, np.concatenate(parts, axis=1))
    assert len(device_traffic.reads) == 1, device_traffic.reads


@pytest.mark.parametrize(("pixels", "count"), [(64, 12), (128, 6), (256, 2)])
def test_working_bytes_bound_what_a_batch_allocates(pixels: int, count: int) -> None:
    """A batch's peak allocation stays under working_bytes per patch plus the one-hot block.

    array_api_strict allocates through NumPy, which reports to tracemalloc: the peak is
    what a device would need. The binning's one-hot block (bool and float64, at most 2²⁴
    elements) is the one part working_bytes leaves out, for the device's other half.
    """
    strict = _strict()
    settings = StatisticsSettings.quick()
    patches = gaussian_field(
        pixels, 2.0, HalofitConvergenceSpectrum(), np.random.default_rng(4), n_fields=count
    )
    stack = strict.asarray(patches, device=strict.Device("device1"))
    rngs = [np.random.default_rng(i) for i in range(count)]
    clear_constants()
    compute_patch_statistics_batch(stack, 2.0, settings, rngs)  # plans and tables, kept
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        compute_patch_statistics_batch(stack, 2.0, settings, rngs)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
        clear_constants()
    half_bins = 2 * settings.n_nu_bins + 2
    one_hot = 9 * min(2**24, count * pixels * pixels * half_bins)
    estimate = count * working_bytes(pixels, 2.0, settings)
    assert peak <= estimate + one_hot, (peak, estimate, one_hot)


@pytest.mark.gpu
def test_each_way_cupy_says_the_device_is_full_halves_a_chunk() -> None:
    """CuPy's pool, cuFFT, cuBLAS and the CUDA runtime each say "out of memory" their own way
    (only the pool's is a MemoryError): all four make a chunk be halved, other CUDA errors
    do not."""
    cupy = pytest.importorskip(
        "cupy", reason="CuPy is not installed (the gpu-cuda12 or gpu-cuda13 extra)"
    )
    try:
        cufft, cublas = cupy.cuda.cufft, cupy.cuda.cublas
    except ImportError as exc:
        pytest.skip(f"CuPy cannot load cuFFT or cuBLAS here: {exc}")
    runtime = cupy.cuda.runtime
    full = [
        cupy.cuda.memory.OutOfMemoryError(2**30, 2**34),
        cufft.CuFFTError(2),  # CUFFT_ALLOC_FAILED
        cublas.CUBLASError(3),  # CUBLAS_STATUS_ALLOC_FAILED
        runtime.CUDARuntimeError(2),  # cudaErrorMemoryAllocation
    ]
    other = [
        cufft.CuFFTError(5),  # CUFFT_INTERNAL_ERROR
        cublas.CUBLASError(1),  # CUBLAS_STATUS_NOT_INITIALIZED
        runtime.CUDARuntimeError(1),  # cudaErrorInvalidValue
        RuntimeError("CUFFT_ALLOC_FAILED"),
    ]
    assert [_cuda.out_of_memory(error) for error in full] == [True] * 4
    assert [_cuda.out_of_memory(error) for error in other] == [False] * 4
