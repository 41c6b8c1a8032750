"""pipeline.device: the patch statistics in batches on a device, with the CPU's numbers.

Without a GPU here, array_api_strict on its second device stands in for one (an
:class:`~lensing_ssc.analysis.ArrayDevice` passed to ``run_patch_statistics``): the batch
stage, its journal and the device chunks are the GPU's, only the namespace differs. The
test marked ``gpu`` runs the real thing where CuPy and a CUDA device are present.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis import (
    ArrayDevice,
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    _cuda,
    gaussian_field,
    select_device,
)
from lensing_ssc.analysis._arrays import clear_constants
from lensing_ssc.analysis.devices import GPU_EXTRAS
from lensing_ssc.analysis.patch_statistics import working_bytes
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines import PipelineConfig, read_results, run_patch_statistics
from lensing_ssc.pipelines._batches import (
    TASK_BYTES,
    BatchWorker,
    PatchBatch,
    per_patch,
    plan_batches,
)
from lensing_ssc.pipelines._map_recipes import MapTask
from lensing_ssc.pipelines._tasks import PatchTask
from lensing_ssc.processing.runner import MapResult, TaskFailure

from .conftest import ConfigFactory, assert_same_results

array_api_strict = pytest.importorskip(
    "array_api_strict", reason="array-api-strict stands in for a GPU; the dev extra has it"
)


@pytest.fixture(autouse=True)
def _fresh_device_tables() -> Any:
    """Every test starts without device copies of the estimators' tables."""
    clear_constants()
    yield
    clear_constants()


def _strict_device(patches_per_chunk: int) -> ArrayDevice:
    """array_api_strict on device1, with free memory for ``patches_per_chunk`` tiny patches."""
    per_patch = working_bytes(64, 2.0, StatisticsSettings.quick())
    free = 2 * patches_per_chunk * per_patch  # batch_size takes half the free memory
    return ArrayDevice(
        "strict",
        array_api_strict,
        array_api_strict.Device("device1"),
        "array_api_strict on device1",
        lambda: free,
    )


def _assert_close_results(device: Mapping[str, Any], cpu: Mapping[str, Any]) -> None:
    """Every dataset of the device run equals the CPU run's to 1e-12 of its scale."""
    arrays = sorted(k for k in cpu if not k.startswith("meta/"))
    assert arrays == sorted(k for k in device if not k.startswith("meta/"))
    for key in arrays:
        want = np.asarray(cpu[key], dtype=float)
        finite = np.abs(want[np.isfinite(want)])
        scale = float(finite.max()) if finite.size else 0.0
        np.testing.assert_allclose(
            device[key], want, rtol=1e-12, atol=1e-12 * scale, err_msg=key, equal_nan=True
        )
    assert device["meta/failures"] == cpu["meta/failures"]


def test_a_device_run_gives_the_cpu_numbers_in_chunks_of_its_memory(
    tiny_config: ConfigFactory,
) -> None:
    """Memory for 5 patches: measured 4 at a time (a power of two, so each chunk has the
    same shape), with the CPU run's results; 'strict' recorded."""
    cpu = run_patch_statistics(tiny_config("cpu"))
    config = tiny_config("device", level="DEBUG")
    run = run_patch_statistics(config, device=_strict_device(5))
    assert (run.device, cpu.device) == ("strict", "cpu")
    assert (run.n_patches, run.failures) == (cpu.n_patches, ())
    results = read_results(run.results_file)
    assert results["meta/config"]["pipeline"]["device"] == "strict"
    assert (run.run_dir / "tasks" / "patch-batches.journal").exists()
    _assert_close_results(results, read_results(cpu.results_file))
    logged = "".join(path.read_text() for path in (config.run_dir / "logs").glob("*"))
    assert "16 patches measured on strict" in logged
    assert "(4 per device chunk)" in logged


def test_a_device_run_resumes_its_batches_from_the_journal(tiny_config: ConfigFactory) -> None:
    """A second device run in the same directory takes every batch from the journal."""
    first = run_patch_statistics(tiny_config(), device=_strict_device(4))
    again = run_patch_statistics(tiny_config(), device=_strict_device(4))
    assert again.resumed == first.n_maps + 1  # the maps, and the one batch of 16 patches
    assert again.n_patches == first.n_patches
    assert_same_results(read_results(again.results_file), read_results(first.results_file))


# A device whose memory is this process's address space: when the pipeline first asks how
# much is free, the limit is set 150 MiB above what the process holds, and the device claims
# a TiB, so the batch's 16 patches of 256² (~300 MiB at once) go in one chunk and fail.
_OUT_OF_MEMORY_RUN = """
import json, resource, sys
import array_api_strict
from lensing_ssc.analysis import ArrayDevice
from lensing_ssc.pipelines import PipelineConfig, run_patch_statistics

def free_memory():
    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        with open("/proc/self/statm") as statm:
            held = int(statm.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (held + 150 * 2**20, resource.RLIM_INFINITY))
    return 2**40

device = ArrayDevice(
    "strict", array_api_strict, array_api_strict.Device("device1"), "stand-in", free_memory
)
run = run_patch_statistics(PipelineConfig.model_validate_json(sys.argv[1]), device=device)
print(json.dumps({"results": str(run.results_file), "failures": len(run.failures)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as Linux has it")
def test_a_chunk_the_device_has_no_memory_for_is_halved_with_the_same_noise(
    tiny_config: ConfigFactory,
) -> None:
    """Out of memory mid-batch: the chunk is measured again in halves, and each patch's
    statistics are the CPU run's (its noise drawn again from its seed)."""
    pixels = {"synthetic": {"patch_pixels": 256, "patches_per_side": 2, "n_large_fields": 2}}
    cpu = run_patch_statistics(tiny_config("cpu", **pixels))
    config = tiny_config("device", level="DEBUG", **pixels)
    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY_RUN, config.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["failures"] == 0
    device, host = read_results(Path(run["results"])), read_results(cpu.results_file)
    samples = sorted(key for key in host if key.endswith("/samples"))  # each patch's values
    assert samples == sorted(key for key in device if key.endswith("/samples"))
    for key in samples:
        scale = float(np.abs(host[key]).max())
        np.testing.assert_allclose(device[key], host[key], rtol=1e-12, atol=1e-12 * scale)
    logged = "".join(path.read_text() for path in (config.run_dir / "logs").glob("*"))
    assert "patches at once did not fit on strict" in logged


class PlanAllocationFailed(RuntimeError):
    """How cuFFT says it has no memory for a plan (CuPy's ``CuFFTError``,
    ``CUFFT_ALLOC_FAILED``): a ``RuntimeError``, not a ``MemoryError``."""


class _CurrentDevice:
    """array_api_strict's device1 as a context manager that makes it current while entered,
    the way ``cupy.cuda.Device`` does (CuPy puts new arrays on the current device)."""

    def __init__(self) -> None:
        self.device = array_api_strict.Device("device1")
        self.current = False

    def __enter__(self) -> _CurrentDevice:
        self.current = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.current = False


class _FewPatchesFit:
    """array_api_strict as the namespace of a device that holds ``fits`` patches at once:
    sending more raises :class:`PlanAllocationFailed`. ``sent`` lists each transfer's size
    and whether the device was current then."""

    __name__ = "few_patches_fit"

    def __init__(self, fits: int) -> None:
        self.fits = fits
        self.sent: list[tuple[int, bool]] = []

    def asarray(self, values: np.ndarray, *, device: _CurrentDevice) -> Any:
        self.sent.append((values.shape[0], device.current))
        if values.shape[0] > self.fits:
            raise PlanAllocationFailed("CUFFT_ALLOC_FAILED")
        return array_api_strict.asarray(values, device=device.device)


def _small_device(
    fits: int, released: list[str], *, knows_plans: bool = True
) -> tuple[ArrayDevice, _FewPatchesFit]:
    """A device with memory for all patches by its count, but room for ``fits`` at once; it
    calls PlanAllocationFailed out of memory when ``knows_plans`` (as CuPy's device does)."""
    namespace = _FewPatchesFit(fits)
    full = (MemoryError, PlanAllocationFailed) if knows_plans else (MemoryError,)
    device = ArrayDevice(
        "small",
        namespace,
        _CurrentDevice(),
        "a device of little memory",
        lambda: 2**40,
        lambda exc: isinstance(exc, full),
        lambda: released.append("released"),
    )
    return device, namespace


def test_a_chunk_a_library_has_no_memory_for_is_halved_after_the_device_releases_memory(
    tiny_config: ConfigFactory,
) -> None:
    """cuFFT's out-of-memory error (no MemoryError) on 16 patches at once: the device gives
    back its memory and the chunk is halved until 2 fit, with the device current each time,
    and the results are the CPU run's."""
    cpu = run_patch_statistics(tiny_config("cpu"))
    released: list[str] = []
    device, namespace = _small_device(3, released)
    config = tiny_config("device", level="DEBUG")
    run = run_patch_statistics(config, device=device)
    assert run.failures == ()
    assert namespace.sent == [(16, True), (8, True), (4, True)] + [(2, True)] * 8
    assert released == ["released"] * 3
    _assert_close_results(read_results(run.results_file), read_results(cpu.results_file))
    logged = "".join(path.read_text() for path in (config.run_dir / "logs").glob("*"))
    assert "16 patches at once did not fit on small (CUFFT_ALLOC_FAILED); trying 8" in logged


class _Maps:
    """A map store holding given patch stacks by map id: all BatchWorker reads of one."""

    def __init__(self, stacks: Mapping[str, np.ndarray]) -> None:
        self.stacks = stacks

    def patches(self, task: MapTask) -> tuple[np.ndarray, bool]:
        return self.stacks[task.map_id], False


def _two_batches() -> tuple[_Maps, list[PatchBatch]]:
    """Two batches of 8 patches of 64² at 2′, from two maps."""
    fields = gaussian_field(
        64, 2.0, HalofitConvergenceSpectrum(), np.random.default_rng(5), n_fields=16
    )
    source = SimpleNamespace(pixel_size_arcmin=2.0)
    maps = [MapTask(set_name="few", index=i, source=source) for i in range(2)]
    store = _Maps({task.map_id: fields[8 * i : 8 * i + 8] for i, task in enumerate(maps)})
    return store, [PatchBatch(tuple(PatchTask(task, j) for j in range(8))) for task in maps]


def test_later_batches_start_from_the_chunk_that_fitted() -> None:
    """After 8 and 4 patches did not fit, the second batch goes 2 at a time from its start,
    and both batches give the numbers of a device that had room for all."""
    store, batches = _two_batches()
    settings = StatisticsSettings.quick()
    released: list[str] = []
    device, namespace = _small_device(3, released)
    worker = BatchWorker(store, settings, 11, device)  # type: ignore[arg-type]
    halved = [worker(batch) for batch in batches]
    assert namespace.sent == [(8, True), (4, True)] + [(2, True)] * 8
    assert released == ["released"] * 2
    roomy = BatchWorker(store, settings, 11, _strict_device(16))  # type: ignore[arg-type]
    for batch, values in zip(batches, halved, strict=True):
        for got, want in zip(values, roomy(batch), strict=True):
            assert got.names == want.names
            np.testing.assert_allclose(got.values, want.values, rtol=1e-12, atol=1e-300)


def test_an_error_the_device_does_not_call_out_of_memory_fails_the_batch_at_once() -> None:
    """A RuntimeError that the device does not recognise as out of memory is raised from
    the first chunk: nothing is halved, nothing released."""
    store, batches = _two_batches()
    released: list[str] = []
    device, namespace = _small_device(3, released, knows_plans=False)
    worker = BatchWorker(store, StatisticsSettings.quick(), 11, device)  # type: ignore[arg-type]
    with pytest.raises(PlanAllocationFailed, match="CUFFT_ALLOC_FAILED"):
        worker(batches[0])
    assert (namespace.sent, released, worker.computed) == ([(8, True)], [], set())


def test_gpu_without_cupy_is_a_config_error_naming_the_extras(tiny_config: ConfigFactory) -> None:
    """device 'gpu' where CuPy is missing: ConfigError on pipeline.device naming both extras."""
    if _cuda.installed():
        pytest.skip("CuPy is installed here")
    with pytest.raises(ConfigError, match="device 'gpu' needs") as info:
        run_patch_statistics(tiny_config(device="gpu"))
    assert info.value.field == "pipeline.device"
    assert all(extra in str(info.value) for extra in GPU_EXTRAS)
    assert "nvidia-smi" in str(info.value)


def test_auto_without_a_gpu_measures_on_the_cpu(tiny_config: ConfigFactory) -> None:
    """device 'auto' on a machine without CuPy or a GPU runs (and records) the CPU path."""
    if _cuda.cuda_problem() is None:
        pytest.skip("this machine has CuPy and a GPU")
    run = run_patch_statistics(tiny_config(device="auto"))
    assert run.device == "cpu"
    assert read_results(run.results_file)["meta/config"]["pipeline"]["device"] == "cpu"


def test_device_setting_defaults_to_cpu_and_refuses_other_names(tmp_path: Path) -> None:
    """pipeline.device is 'cpu' unless set; 'tpu' is a ConfigError naming the field."""
    assert PipelineConfig(run_dir=tmp_path).pipeline.device == "cpu"
    with pytest.raises(ConfigError, match=r"pipeline\.device"):
        PipelineConfig(run_dir=tmp_path, pipeline={"device": "tpu"})


def _tasks(pixels: Mapping[str, int], count: int) -> tuple[list[PatchTask], dict[str, Any]]:
    # The batches need only each map's id: no source behind it.
    maps = [MapTask(set_name=name, index=0, source=None) for name in pixels]
    tasks = [PatchTask(task, j) for task in maps for j in range(count)]
    geometry = {task.map_id: (pixels[task.set_name], 2.0) for task in maps}
    return tasks, geometry


def test_batches_keep_one_geometry_and_their_size() -> None:
    """Batches follow the plan's order, never mix patch sizes and hold at most TASK_BYTES."""
    big = int((TASK_BYTES // 8) ** 0.5 // 2)  # four of these fill a batch
    tasks, geometry = _tasks({"small": 64, "large": big, "last": 64}, 6)
    batches = plan_batches(tasks, geometry)
    assert [len(b.tasks) for b in batches] == [6, 4, 2, 6]
    assert [t for b in batches for t in b.tasks] == tasks
    assert batches[1].key == "large/map-0000/patch-0000+3"


def test_a_failed_batch_is_a_failure_of_each_of_its_patches() -> None:
    """per_patch flattens results and lists every patch of a failed batch with its error."""
    tasks, _ = _tasks({"s": 64}, 5)
    batches = [PatchBatch(tuple(tasks[:3])), PatchBatch(tuple(tasks[3:]))]
    failure = TaskFailure(1, batches[1].key, "ValueError", "bad", "", 2)
    result = MapResult(
        results=[("a", "b", "c"), None],
        keys=(batches[0].key, batches[1].key),
        failures=(failure,),
        completed=1,
        skipped=0,
        remaining=0,
        elapsed=0.5,
    )
    flat = per_patch(batches, result, computed={batches[0].key})
    assert list(flat.results) == ["a", "b", "c", None, None]
    assert flat.results[1] == "b"
    assert [(f.index, f.key, f.attempts) for f in flat.failures] == [
        (3, tasks[3].key, 2),
        (4, tasks[4].key, 2),
    ]
    assert (flat.completed, flat.skipped, flat.keys[0]) == (3, 0, tasks[0].key)


@pytest.mark.gpu
def test_gpu_run_gives_the_cpu_numbers(tiny_config: ConfigFactory) -> None:
    """On a real GPU, pipeline.device 'gpu' gives the CPU run's results (to 1e-12)."""
    try:
        select_device("gpu")
    except ConfigError as exc:
        pytest.skip(f"no GPU path here: {exc.message}")
    cpu = run_patch_statistics(tiny_config("cpu"))
    gpu = run_patch_statistics(tiny_config("gpu", device="gpu"))
    assert gpu.device == "gpu"
    _assert_close_results(read_results(gpu.results_file), read_results(cpu.results_file))


def test_auto_on_the_cpu_says_why_in_the_run_log(tiny_config: ConfigFactory) -> None:
    """device 'auto' that fell back to the CPU logs why, once, in the run's own log; a
    'cpu' run logs no device line."""

    def no_driver() -> ArrayDevice:
        raise ConfigError("no NVIDIA driver is loaded", value=None, hint="use device 'cpu'")

    config = tiny_config("auto")
    run = run_patch_statistics(config, device=select_device("auto", find_gpu=no_driver))
    assert run.device == "cpu"
    line = "patch statistics on NumPy on the CPU (no GPU: no NVIDIA driver is loaded)"
    logs = sorted((config.run_dir / "logs").glob("*"))
    assert logs
    assert [path.read_text().count(line) for path in logs] == [1] * len(logs)
    plain = tiny_config("cpu")
    run_patch_statistics(plain, device="cpu")
    logged = "".join(path.read_text() for path in (plain.run_dir / "logs").glob("*"))
    assert "patch statistics on" not in logged
