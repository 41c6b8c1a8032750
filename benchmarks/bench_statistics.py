"""Benchmark of lensing_ssc.analysis: patch statistics against numpy's own FFT of the patch.

Everything runs in one process, alternating the measured calls so that load noise on a
shared machine mostly cancels; figures are medians over repeats. The unit is the time of
one forward + inverse real FFT of the patch with numpy (``irfft2(rfft2(patch))``); the
complex ``ifft2(fft2(patch))`` is printed too, for reference.

1. Smoothed-map statistics (PDF, peaks, minima, V0, V1, V2) at one (n_gal, smoothing)
   setting, from the raw patch: its FFT, the shape-noise draw and FFT, smoothing and all
   map statistics. Target: ≤ 5 × the FFT unit.
2. Everything for one patch at one setting: the above plus the binned power spectrum and
   the equilateral, isosceles and squeezed bispectra. Target: ≤ 20 × the FFT unit.
3. For information: the default settings (5 n_gal × 4 smoothing scales) per patch, the
   one-off cost of building the binning/bispectrum plans for a new patch geometry, and a
   stack of 128² patches measured as one batch against one at a time (quick settings).

``--device gpu`` measures the statistics of a batch of patches (quick settings, 128² by
default) per patch on the GPU (CuPy), against the same batch on one CPU core (one at a time,
and as a NumPy batch) and on all cores (a process per core), and prints the ratios; the goal
is ≥ 100 × one core. ``--pipeline`` adds the synthetic pipeline end to end, ``device: gpu``
against the processes executor on all cores (goal ≥ 10 ×). Where there is no GPU (no CuPy,
no device) it prints one line saying why and how to get one, and exits with status 2 before
measuring anything.

Usage::

    python benchmarks/bench_statistics.py            # 2048² patch, 0.5 arcmin pixels
    python benchmarks/bench_statistics.py --quick    # 1024² patch
    python benchmarks/bench_statistics.py --device gpu [--batch 4096] [--pipeline]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    compute_patch_statistics,
    compute_patch_statistics_batch,
    gaussian_field,
    select_device,
)
from lensing_ssc.analysis.patch_statistics import working_bytes
from lensing_ssc.analysis.statistics import bispectrum_plan, ell_binning
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines import PipelineConfig, run_patch_statistics

MAP_TARGET = 5.0
ALL_TARGET = 20.0
PIXEL_ARCMIN = 0.5
GPU_TARGET = 100.0  # × one CPU core, statistics per patch
GPU_PIPELINE_TARGET = 10.0  # × the processes executor on all cores, end to end
BATCH_PIXEL_ARCMIN = 2.0


def timed(func: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def alternate(calls: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Run every call ``repeat`` times, rotating the order each round."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            times[name].append(timed(calls[name]))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1024² instead of 2048²")
    parser.add_argument("--repeat", type=int, default=7, help="repeats per measurement (>= 3)")
    parser.add_argument(
        "--device", choices=("cpu", "gpu"), default="cpu", help="gpu: the GPU against the CPU"
    )
    parser.add_argument("--batch", type=int, default=4096, help="patches per batch (--device gpu)")
    parser.add_argument("--pixels", type=int, default=128, help="patch side (--device gpu)")
    parser.add_argument(
        "--pipeline", action="store_true", help="also the pipeline end to end (--device gpu)"
    )
    args = parser.parse_args(argv)
    repeat = max(3, args.repeat)
    if args.device == "gpu":
        return gpu_main(args.batch, args.pixels, repeat, args.pipeline)
    return cpu_main(1024 if args.quick else 2048, repeat)


def cpu_main(n: int, repeat: int) -> int:
    """Statistics of one large patch against numpy's FFT of it (the targets)."""
    print(
        f"lensing_ssc.analysis benchmark  python {sys.version.split()[0]}  numpy {np.__version__}"
        f"  cpus: {os.cpu_count()}  patch {n}² at {PIXEL_ARCMIN} arcmin"
    )
    rng = np.random.default_rng(0)
    patch = gaussian_field(n, PIXEL_ARCMIN, HalofitConvergenceSpectrum(), rng)
    maps_only = StatisticsSettings(
        n_gal=(30.0,),
        smoothing_arcmin=(2.0,),
        statistics=("pdf", "peaks", "minima", "v0", "v1", "v2"),
    )
    everything = StatisticsSettings(n_gal=(30.0,), smoothing_arcmin=(2.0,))
    defaults = StatisticsSettings()

    start = time.perf_counter()
    ell_binning(n, PIXEL_ARCMIN, everything.ell_edges)
    bispectrum_plan(n, PIXEL_ARCMIN, everything.bispectrum_edges, everything.isosceles_ratio)
    plan_time = time.perf_counter() - start
    compute_patch_statistics(patch, PIXEL_ARCMIN, everything, rng)  # warm the window caches

    calls: dict[str, Callable[[], object]] = {
        "numpy rfft2 + irfft2": lambda: np.fft.irfft2(np.fft.rfft2(patch), s=patch.shape),
        "numpy fft2 + ifft2": lambda: np.fft.ifft2(np.fft.fft2(patch)),
        "map statistics, 1 setting": lambda: compute_patch_statistics(
            patch, PIXEL_ARCMIN, maps_only, rng
        ),
        "all statistics, 1 setting": lambda: compute_patch_statistics(
            patch, PIXEL_ARCMIN, everything, rng
        ),
    }
    times = alternate(calls, repeat)
    medians = {name: statistics.median(values) for name, values in times.items()}
    unit = medians["numpy rfft2 + irfft2"]

    print(f"\n## one patch, one (n_gal=30, smoothing=2') setting (median of {repeat}, rotating)")
    print(f"{'measurement':<30}{'median s':>10}{'x FFT':>8}   runs (s)")
    for name, values in times.items():
        runs = ", ".join(f"{t:.3f}" for t in values)
        print(f"{name:<30}{medians[name]:>10.3f}{medians[name] / unit:>8.2f}   {runs}")
    map_ratio = medians["map statistics, 1 setting"] / unit
    all_ratio = medians["all statistics, 1 setting"] / unit
    map_met, all_met = map_ratio <= MAP_TARGET, all_ratio <= ALL_TARGET
    print(
        f"map statistics / FFT = {map_ratio:.2f}  (target <= {MAP_TARGET:g}: "
        f"{'MET' if map_met else 'NOT MET'})"
    )
    print(
        f"all statistics / FFT = {all_ratio:.2f}  (target <= {ALL_TARGET:g}: "
        f"{'MET' if all_met else 'NOT MET'})"
    )

    full = statistics.median(
        timed(lambda: compute_patch_statistics(patch, PIXEL_ARCMIN, defaults, rng))
        for _ in range(max(1, repeat // 3))
    )
    settings_count = len(defaults.n_gal) * len(defaults.smoothing_arcmin)
    print("\n## for information")
    print(
        f"default settings ({settings_count} settings, all statistics): {full:.2f} s per patch"
        f" = {full / unit:.1f} x FFT"
    )
    print(f"one-off plan building for a new {n}² geometry: {plan_time:.3f} s")
    one, batched = numpy_batch_figures(make_batch(64, 128), repeat)
    print(
        f"64 patches of 128², quick settings, one core: one at a time {one * 1e3:.2f} ms per "
        f"patch, as one batch {batched * 1e3:.2f} ms ({one / batched:.2f}x)"
    )
    return 0 if (map_met and all_met) else 1


def make_batch(count: int, pixels: int) -> np.ndarray:
    """``count`` Gaussian patches of ``pixels``² at 2′, as one stack."""
    spectrum = HalofitConvergenceSpectrum()
    rng = np.random.default_rng(1)
    return gaussian_field(pixels, BATCH_PIXEL_ARCMIN, spectrum, rng, n_fields=count)


def generators(first: int, count: int) -> list[np.random.Generator]:
    """One seeded noise generator per patch, as the pipeline makes them."""
    return [np.random.default_rng([7, i]) for i in range(first, first + count)]


_SETTINGS = StatisticsSettings.quick()
_SHARED: dict[str, np.ndarray] = {}  # the batch, made again in each worker


def _one_at_a_time(patches: np.ndarray, first: int = 0) -> None:
    for i, patch in enumerate(patches):
        compute_patch_statistics(patch, BATCH_PIXEL_ARCMIN, _SETTINGS, generators(first + i, 1)[0])


def _measure_slice(bounds: tuple[int, int]) -> int:
    first, end = bounds
    patches = _SHARED["batch"][first:end]
    compute_patch_statistics_batch(
        patches, BATCH_PIXEL_ARCMIN, _SETTINGS, generators(first, end - first)
    )
    return end - first


def numpy_batch_figures(batch: np.ndarray, repeat: int) -> tuple[float, float]:
    """Seconds per patch on one core: one at a time, and the stack as one NumPy batch."""
    count = len(batch)
    _one_at_a_time(batch[:2])
    times = alternate(
        {
            "one": lambda: _one_at_a_time(batch),
            "batch": lambda: compute_patch_statistics_batch(
                batch, BATCH_PIXEL_ARCMIN, _SETTINGS, generators(0, count)
            ),
        },
        repeat,
    )
    return statistics.median(times["one"]) / count, statistics.median(times["batch"]) / count


def _make_shared(count: int, pixels: int) -> None:
    _SHARED["batch"] = make_batch(count, pixels)  # seeded: the parent's batch


def all_cores_figure(batch: np.ndarray, repeat: int) -> tuple[float, int]:
    """Seconds per patch with a process per core, each measuring slices of the batch.

    The workers come from a fork server, not forked from this process: CUDA, which the GPU
    measurement has started here, does not survive a fork (and its threads can deadlock
    the child).
    """
    workers = os.cpu_count() or 1
    count = len(batch)
    step = max(1, min(64, count // (4 * workers)))
    slices = [(first, min(count, first + step)) for first in range(0, count, step)]
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_make_shared,
        initargs=(count, batch.shape[-1]),
    ) as pool:
        list(pool.map(_measure_slice, slices[:workers]))  # start and warm every worker
        runs = [timed(lambda: sum(pool.map(_measure_slice, slices))) for _ in range(repeat)]
    return statistics.median(runs) / count, workers


def gpu_main(count: int, pixels: int, repeat: int, pipeline: bool) -> int:
    """The statistics of a batch per patch on the GPU against one core and all cores."""
    try:
        device = select_device("gpu")
    except ConfigError as exc:
        print(f"bench_statistics.py --device gpu: no GPU to measure: {exc}", file=sys.stderr)
        return 2
    print(
        f"lensing_ssc.analysis GPU benchmark  python {sys.version.split()[0]}  numpy "
        f"{np.__version__}  cpus: {os.cpu_count()}  {count} patches of {pixels}² at "
        f"{BATCH_PIXEL_ARCMIN}′, quick settings"
    )
    batch = make_batch(count, pixels)
    sample = batch[: min(count, 256)]
    one, batched = numpy_batch_figures(sample, repeat)
    cores, workers = all_cores_figure(batch, max(1, repeat // 3))
    single = min(one, batched)
    print("\n## seconds per patch (median)")
    print(f"{'measurement':<44}{'ms/patch':>10}")
    print(f"{'one core, one patch at a time':<44}{one * 1e3:>10.3f}")
    print(f"{'one core, NumPy batch':<44}{batched * 1e3:>10.3f}")
    print(f"{f'all {workers} cores, a process per core':<44}{cores * 1e3:>10.3f}")
    print(f"NumPy batch / one at a time: {one / batched:.2f}x faster")
    print(f"device: {device.description}")
    step = min(
        count, device.batch_size(working_bytes(pixels, BATCH_PIXEL_ARCMIN, _SETTINGS)) or count
    )
    print(f"device chunk: {step} patches")
    on_device = device.asarray(batch[:step])

    def on_gpu(values: object) -> None:
        stats = compute_patch_statistics_batch(
            values, BATCH_PIXEL_ARCMIN, _SETTINGS, generators(0, step)
        )
        device.gather_columns(list(stats.values()))  # waits for the device, brings them home

    with device.activated():  # CuPy works on the current device
        on_gpu(on_device)  # plans, kernels and tables: once
        resident = statistics.median(timed(lambda: on_gpu(on_device)) for _ in range(repeat))
        with_copy = statistics.median(
            timed(lambda: on_gpu(device.asarray(batch[:step]))) for _ in range(repeat)
        )
    resident, with_copy = resident / step, with_copy / step
    print(f"{'GPU, patches already on the device':<44}{resident * 1e3:>10.4f}")
    print(f"{'GPU, copied from the host first':<44}{with_copy * 1e3:>10.4f}")
    ratio = single / with_copy
    print(
        f"GPU vs one core: {ratio:.0f}x (target >= {GPU_TARGET:g}: "
        f"{'MET' if ratio >= GPU_TARGET else 'NOT MET'}); vs all {workers} cores: "
        f"{cores / with_copy:.1f}x"
    )
    met = ratio >= GPU_TARGET
    if pipeline:
        met &= pipeline_figures(repeat)
    return 0 if met else 1


def pipeline_figures(repeat: int) -> bool:
    """The synthetic pipeline end to end: device gpu against processes on all cores."""
    pipeline = {
        "figures": False,
        "synthetic": {"patch_pixels": 128, "patches_per_side": 8, "n_large_fields": 16},
    }
    quiet = {"logging": {"console": False}, "progress": {"enabled": False}}
    times: dict[str, list[float]] = {"processes": [], "gpu": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(1, repeat // 3)):
            for name, device in (("processes", "cpu"), ("gpu", "gpu")):
                config = PipelineConfig(
                    run_dir=Path(tmp) / f"{name}-{i}",
                    pipeline={**pipeline, "executor": "processes", "device": device},
                    **quiet,
                )
                times[name].append(timed(lambda config=config: run_patch_statistics(config)))
    cpu, gpu = (statistics.median(times[name]) for name in ("processes", "gpu"))
    ratio = cpu / gpu
    print(
        f"\npipeline, 2048 patches of 128² (synthetic, quick): processes on all cores "
        f"{cpu:.2f} s, device gpu {gpu:.2f} s: {ratio:.1f}x (target >= "
        f"{GPU_PIPELINE_TARGET:g}: {'MET' if ratio >= GPU_PIPELINE_TARGET else 'NOT MET'})"
    )
    return ratio >= GPU_PIPELINE_TARGET


if __name__ == "__main__":
    sys.exit(main())
