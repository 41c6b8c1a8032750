"""Benchmark of lensing_ssc.core.io: atomic writes, codecs, hashing and size estimation.

Everything runs in one process, alternating ours and the baseline so that load noise on a
shared machine mostly cancels; the figures are medians over repeats (for the write test,
the median of the ratios of adjacent pairs of runs).

1. ``atomic_write`` of a 1 GiB buffer against a raw ``open``/``write``/``fsync`` of the same
   buffer in the same directory, each replacing its previous version. Target: ours >= 0.85 x
   raw throughput. Before every timed write both sides get the same ``os.sync()``, pause
   and warmed free memory (see ``_common.py``), and a control pair, the raw write against
   itself, shows how much the machine alone moves the ratio.
2. Compression of a realistic float32 map (a smooth 2048² Gaussian random field): ratio and
   MB/s of zstd level 3 next to gzip and lz4, and what ``compress`` decides with auto-raw.
3. Hashing throughput (xxh3_128 vs blake2b) and ``estimate_size`` per call.

Usage::

    python benchmarks/bench_io.py            # full sizes (needs ~3 GB of RAM and disk)
    python benchmarks/bench_io.py --quick    # 128 MiB write, 1024² map
    python benchmarks/bench_io.py --dir /scratch/me   # measure another filesystem
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from _common import settle, warm_free_memory
from lensing_ssc.core.io import (
    atomic_write,
    available_codecs,
    compress,
    estimate_size,
    get_codec,
    hash_bytes,
)

MB = 1e6
TARGET_RATIO = 0.85


def timed(func: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_time(func: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    return statistics.median(timed(func) for _ in range(repeat))


def raw_write(path: Path, buf: np.ndarray) -> None:
    """The baseline: write and fsync in place, without any atomicity."""
    with open(path, "wb") as fh:
        fh.write(memoryview(buf))
        fh.flush()
        os.fsync(fh.fileno())


def bench_atomic_write(directory: Path, size: int, repeat: int, pause: float) -> bool:
    """Time atomic_write against a raw write of the same buffer; True if the target is met.

    A second raw writer, the control, runs under the same protocol: its ratio to the first
    shows how much of a difference the machine alone makes (it should read close to 1).
    """
    buf = np.arange(size // 8, dtype=np.uint64)
    paths = {name: directory / f"{name}.bin" for name in ("ours", "raw", "control")}
    writers: dict[str, Callable[[], object]] = {
        "ours": lambda: atomic_write(paths["ours"], buf),
        "raw": lambda: raw_write(paths["raw"], buf),
        "control": lambda: raw_write(paths["control"], buf),
    }
    for write in writers.values():  # every timed run replaces an existing file
        write()
    times: dict[str, list[float]] = {name: [] for name in writers}
    names = list(writers)
    for i in range(repeat):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            settle(pause)
            warm_free_memory(2 * size)
            times[name].append(timed(writers[name]))
    ours, raw, control = times["ours"], times["raw"], times["control"]
    ours_t, raw_t = statistics.median(ours), statistics.median(raw)
    # The runs of one repeat are adjacent in time, so a burst of load from elsewhere hits
    # all of them; the median of the per-repeat ratios is the figure that noise least moves.
    ratio = statistics.median(r / o for r, o in zip(raw, ours, strict=True))
    control_ratio = statistics.median(r / c for r, c in zip(raw, control, strict=True))
    print(
        f"\n## atomic_write of {size / 2**30:.3g} GiB in {directory} (median of {repeat}, "
        f"order rotating; sync, {pause:g} s pause and warmed memory before each)"
    )
    print(f"{'method':<32}{'median s':>10}{'MB/s':>10}   runs (s)")
    for label, runs in (
        ("raw open/write/fsync", raw),
        ("control: the same raw write", control),
        ("atomic_write (tmp+fsync+rename)", ours),
    ):
        median = statistics.median(runs)
        print(
            f"{label:<32}{median:>10.3f}{size / median / MB:>10.0f}   "
            f"{', '.join(f'{t:.3f}' for t in runs)}"
        )
    met = ratio >= TARGET_RATIO
    print(
        f"throughput ratio ours/raw = {ratio:.3f} (median of per-repeat ratios; ratio of "
        f"medians {raw_t / ours_t:.3f}; control raw/raw {control_ratio:.3f})"
        f"  target >= {TARGET_RATIO}: {'MET' if met else 'NOT MET'}"
    )
    for path in paths.values():
        path.unlink()
    return met


def gaussian_random_field(n: int, seed: int = 0) -> np.ndarray:
    """A smooth float32 map: white noise coloured by P(k) ~ k^-2 and a Gaussian beam."""
    rng = np.random.default_rng(seed)
    kx = np.fft.fftfreq(n)[:, None]
    ky = np.fft.rfftfreq(n)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    amplitude = k**-1.0 * np.exp(-0.5 * (k * n / 400.0) ** 2)  # sqrt(P), beam of ~n/400 px
    amplitude[0, 0] = 0.0
    field = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, n))) * amplitude, s=(n, n))
    field /= field.std()
    return (0.02 * field).astype(np.float32)  # convergence-like amplitude


def bench_codecs(n: int, repeat: int) -> None:
    """Ratio and MB/s of every installed codec on a float32 random field."""
    field = gaussian_random_field(n)
    data = field.tobytes()
    size = len(data)
    settings = [("gzip", 1), ("gzip", 6), ("zstd", 1), ("zstd", 3), ("zstd", 9), ("lz4", 0)]
    print(
        f"\n## compression of a {n}x{n} float32 Gaussian random field ({size / MB:.1f} MB, median of {repeat})"
    )
    print(
        f"{'codec':<10}{'level':>6}{'ratio':>8}{'comp MB/s':>11}{'decomp MB/s':>13}   compress() with min_ratio=0.9 keeps"
    )
    for name, level in settings:
        if name not in available_codecs():
            print(f"{name:<10}{level:>6}   (not installed)")
            continue
        codec = get_codec(name)
        payload = codec.compress(data, level=level)
        assert codec.decompress(payload) == data
        comp = median_time(partial(codec.compress, data, level=level), repeat)
        decomp = median_time(partial(codec.decompress, payload), repeat)
        kept, _ = compress(data, name, level=level)
        print(
            f"{name:<10}{level:>6}{len(payload) / size:>8.3f}{size / comp / MB:>11.0f}{size / decomp / MB:>13.0f}   {kept}"
        )


def bench_hash_and_size(repeat: int) -> None:
    """Hashing throughput and estimate_size cost per call."""
    data = np.random.default_rng(1).bytes(64 << 20)
    print(f"\n## hashing 64 MiB (median of {repeat})")
    for algorithm in ("xxh3_128", "blake2b"):
        took = median_time(partial(hash_bytes, data, algorithm=algorithm), repeat)
        print(f"{algorithm:<10}{len(data) / took / MB:>10.0f} MB/s")
    arr = np.zeros(8 << 20)
    views = {"a": arr[::2], "b": arr[1::2], "c": arr}
    per = lambda f: min(timeit.repeat(f, number=20_000, repeat=5)) / 20_000 * 1e9  # noqa: E731
    print("\n## estimate_size per call (best of 5 x 20 000)")
    print(
        f"{'plain 64 MiB ndarray':<34}{per(lambda: estimate_size(arr)):>8.0f} ns   (sys.getsizeof: {per(lambda: sys.getsizeof(arr)):.0f} ns)"
    )
    print(
        f"{'dict of 2 views + base':<34}{per(lambda: estimate_size(views)):>8.0f} ns   -> {estimate_size(views) / 2**20:.1f} MiB (sys.getsizeof: {sys.getsizeof(views)} B)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--repeat", type=int, default=7, help="repeats per measurement (>= 3)")
    parser.add_argument(
        "--pause", type=float, default=1.0, help="seconds to settle before each timed write"
    )
    parser.add_argument("--dir", type=Path, default=None, help="directory (filesystem) to write in")
    args = parser.parse_args(argv)
    repeat = max(3, args.repeat)
    size = (128 << 20) if args.quick else (1 << 30)
    n = 1024 if args.quick else 2048
    print(
        f"lensing_ssc.core.io benchmark  python {sys.version.split()[0]}  numpy {np.__version__}  "
        f"codecs: {', '.join(available_codecs())}  cpus: {os.cpu_count()}"
    )
    directory = Path(tempfile.mkdtemp(prefix="bench_io-", dir=args.dir))
    try:
        met = bench_atomic_write(directory, size, repeat, args.pause)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    bench_codecs(n, repeat)
    bench_hash_and_size(repeat)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
