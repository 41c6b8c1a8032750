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
3. For information: the default settings (5 n_gal × 4 smoothing scales) per patch, and
   the one-off cost of building the binning/bispectrum plans for a new patch geometry.

Usage::

    python benchmarks/bench_statistics.py            # 2048² patch, 0.5 arcmin pixels
    python benchmarks/bench_statistics.py --quick    # 1024² patch
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from lensing_ssc.analysis import (
    HalofitConvergenceSpectrum,
    StatisticsSettings,
    compute_patch_statistics,
    gaussian_field,
)
from lensing_ssc.analysis.statistics import bispectrum_plan, ell_binning

MAP_TARGET = 5.0
ALL_TARGET = 20.0
PIXEL_ARCMIN = 0.5


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
    args = parser.parse_args(argv)
    repeat = max(3, args.repeat)
    n = 1024 if args.quick else 2048
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
    return 0 if (map_met and all_met) else 1


if __name__ == "__main__":
    sys.exit(main())
