"""Benchmark of CacheManager against cachetools, functools.lru_cache, diskcache and numpy I/O.

Everything runs in one process, ours and the anchors alternating round by round so that
load on a shared machine mostly cancels; figures are medians over rounds and ratios are
ours divided by the anchor's (time ratios: lower is better; throughput ratios: higher).

1. Memory-tier hit, thread-safe, statistics on, against an unlocked ``cachetools.LRUCache``
   (``c[k]`` and ``c.get(k)``), the same behind a ``threading.Lock``, and
   ``functools.lru_cache``. Targets: <= 1.25 x unlocked cachetools, < locked cachetools.
2. Put with eviction in a full cache of 1 000 and of 100 000 entries, for each policy (O(1):
   the per-put time does not grow), next to cachetools' LRU/LFU/FIFO caches.
3. Disk tier, small values (100 bytes): put and get against ``diskcache.Cache`` with the
   same policy (LRU) and statistics on. Target: no slower. Enough puts are timed that both
   pay for their SQLite checkpoints (ours come less often but copy more). Our gets are disk
   reads: each key is read once from a fresh manager, so the memory tier never answers.
4. Disk tier, a 100 MB float64 array: get against ``np.load`` of the same data as ``.npy``
   (target >= 0.8 x; also with ``memory_map="verify"``, checked through a memory map instead
   of read into a fresh array) and put against ``tofile`` + ``fsync`` rewriting one file in place
   (target >= 0.7 x); also against ``tofile`` + ``fsync`` to a new file (what a crash-safe
   store must do) and diskcache. Reads are timed with the files in the page cache (warmed
   first); before every write, every side gets the same ``os.sync()`` and pause.
5. Invalidating 100 000 entries by one tag, memory only and with the disk tier, next to
   diskcache's ``evict(tag)``. Target: <= 1 s.

Usage::

    python benchmarks/bench_cache.py            # full sizes (~3 minutes, ~1 GB of disk)
    python benchmarks/bench_cache.py --quick    # smaller sizes, fewer rounds
    python benchmarks/bench_cache.py --dir /scratch/me   # measure another filesystem
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cachetools
import diskcache
import numpy as np

from _common import settle
from lensing_ssc.processing.managers import CacheManager

RESULTS: list[tuple[str, str, bool | None]] = []


def report(name: str, text: str, ok: bool | None = None) -> None:
    """Print one line of results and remember it for the summary."""
    mark = "" if ok is None else ("  PASS" if ok else "  MISS")
    print(f"  {name:<46} {text}{mark}")
    RESULTS.append((name, text, ok))


def rounds(contenders: dict[str, Callable[[], float]], count: int) -> dict[str, float]:
    """Run each contender once per round, alternating; return the median of each."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(count):
        for name, run in contenders.items():
            samples[name].append(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def per_call(loop: Callable[[], None], calls: int) -> Callable[[], float]:
    """A contender timing ``loop`` (which makes ``calls`` calls), in seconds per call."""

    def run() -> float:
        start = time.perf_counter()
        loop()
        return (time.perf_counter() - start) / calls

    return run


# -- 1. memory hits ------------------------------------------------------------------------
def bench_memory_hits(n_keys: int, reps: int, count: int) -> None:
    print(f"\n1. Memory-tier hit ({n_keys} keys, {reps} passes a round, ns per lookup)")
    keys = list(range(n_keys))
    ours = CacheManager(max_entries=2 * n_keys, eviction_policy="lru")
    locked_path = CacheManager(max_entries=2 * n_keys, eviction_policy="lru")
    locked_path._lookup = {}.get  # force the locked path, which lfu and free-threaded take
    lfu = CacheManager(max_entries=2 * n_keys, eviction_policy="lfu")
    fifo = CacheManager(max_entries=2 * n_keys, eviction_policy="fifo")
    bare = cachetools.LRUCache(maxsize=2 * n_keys)
    guarded = cachetools.LRUCache(maxsize=2 * n_keys)
    lock = threading.Lock()
    for key in keys:
        for cache in (ours, locked_path, lfu, fifo):
            cache.put(key, key)
        bare[key] = guarded[key] = key

    @functools.lru_cache(maxsize=2 * n_keys)
    def memo(key: int) -> int:
        return key

    for key in keys:
        memo(key)

    def loop_get(cache: Any) -> Callable[[], None]:
        def loop() -> None:
            get = cache.get
            for _ in range(reps):
                for key in keys:
                    get(key)

        return loop

    def loop_subscript() -> None:
        for _ in range(reps):
            for key in keys:
                bare[key]

    def loop_locked() -> None:
        for _ in range(reps):
            for key in keys:
                with lock:
                    guarded[key]

    def loop_memo() -> None:
        for _ in range(reps):
            for key in keys:
                memo(key)

    calls = reps * n_keys
    times = rounds(
        {
            "ours lru get": per_call(loop_get(ours), calls),
            "ours fifo get": per_call(loop_get(fifo), calls),
            "ours lfu get (locked path)": per_call(loop_get(lfu), calls),
            "ours lru get, locked path": per_call(loop_get(locked_path), calls),
            "cachetools LRUCache c[k]": per_call(loop_subscript, calls),
            "cachetools LRUCache c.get(k)": per_call(loop_get(bare), calls),
            "cachetools LRUCache + Lock": per_call(loop_locked, calls),
            "functools.lru_cache hit": per_call(loop_memo, calls),
        },
        count,
    )
    for name, seconds in times.items():
        report(name, f"{seconds * 1e9:7.0f} ns")
    anchor = times["cachetools LRUCache c[k]"]
    ratio = times["ours lru get"] / anchor
    report(
        "ours lru / unlocked cachetools c[k]", f"{ratio:5.2f} x  (target <= 1.25)", ratio <= 1.25
    )
    ratio = times["ours lru get"] / times["cachetools LRUCache c.get(k)"]
    report("ours lru / unlocked cachetools c.get(k)", f"{ratio:5.2f} x")
    ratio = times["ours lru get"] / times["cachetools LRUCache + Lock"]
    report("ours lru / cachetools behind a Lock", f"{ratio:5.2f} x  (target < 1)", ratio < 1)
    ratio = times["ours lru get, locked path"] / times["cachetools LRUCache + Lock"]
    report("ours locked path / cachetools behind a Lock", f"{ratio:5.2f} x")
    stats = ours.get_stats()
    assert stats.hits == count * calls, stats
    assert stats.misses == 0, stats
    for cache in (ours, locked_path, lfu, fifo):
        cache.close()


# -- 2. puts with eviction -----------------------------------------------------------------
def bench_eviction(sizes: tuple[int, int], puts: int, count: int) -> None:
    print(f"\n2. Put with eviction into a full cache ({puts} puts, µs per put)")
    anchors = {"lru": cachetools.LRUCache, "lfu": cachetools.LFUCache, "fifo": cachetools.FIFOCache}

    def ours(policy: str, size: int) -> Callable[[], float]:
        def run() -> float:
            with CacheManager(max_entries=size, max_size_mb=4096, eviction_policy=policy) as c:
                for key in range(size):
                    c.put(key, key)
                start = time.perf_counter()
                for key in range(size, size + puts):
                    c.put(key, key)
                return (time.perf_counter() - start) / puts

        return run

    def anchor(policy: str, size: int) -> Callable[[], float]:
        def run() -> float:
            c = anchors[policy](maxsize=size)
            for key in range(size):
                c[key] = key
            start = time.perf_counter()
            for key in range(size, size + puts):
                c[key] = key
            return (time.perf_counter() - start) / puts

        return run

    for policy in ("lru", "lfu", "fifo"):
        contenders = {}
        for size in sizes:
            contenders[f"ours {policy} @ {size}"] = ours(policy, size)
            contenders[f"cachetools {policy} @ {size}"] = anchor(policy, size)
        times = rounds(contenders, count)
        small, large = (times[f"ours {policy} @ {size}"] for size in sizes)
        report(
            f"ours {policy}: {sizes[0]} / {sizes[1]} entries",
            f"{small * 1e6:5.2f} / {large * 1e6:5.2f} µs  growth {large / small:4.2f} x",
            large / small < 1.5,
        )
        small, large = (times[f"cachetools {policy} @ {size}"] for size in sizes)
        report(
            f"cachetools {policy}: {sizes[0]} / {sizes[1]} entries",
            f"{small * 1e6:5.2f} / {large * 1e6:5.2f} µs  growth {large / small:4.2f} x",
        )


# -- 3. disk tier, small values ------------------------------------------------------------
def bench_disk_small(directory: Path, n: int, count: int) -> None:
    print(f"\n3. Disk tier, small values ({n} x 100 bytes, LRU, statistics on, µs per call)")
    items = [(f"key-{i}", bytes([i % 256]) * 100) for i in range(n)]
    serial = iter(range(1_000_000))
    put_times: dict[str, list[float]] = {"ours": [], "diskcache": []}
    get_times: dict[str, list[float]] = {"ours": [], "diskcache": []}
    for _ in range(count):
        round_dir = directory / f"small-{next(serial)}"
        ours_dir, theirs_dir = round_dir / "ours", round_dir / "diskcache"
        with CacheManager(max_entries=2 * n, cache_dir=ours_dir) as cache:
            start = time.perf_counter()
            for key, value in items:
                cache.put(key, value)
            put_times["ours"].append((time.perf_counter() - start) / n)
        theirs = diskcache.Cache(
            str(theirs_dir), eviction_policy="least-recently-used", statistics=True
        )
        start = time.perf_counter()
        for key, value in items:
            theirs.set(key, value)
        put_times["diskcache"].append((time.perf_counter() - start) / n)
        with CacheManager(max_entries=2 * n, cache_dir=ours_dir) as cache:
            start = time.perf_counter()
            for key, value in items:
                assert cache.get(key) == value
            get_times["ours"].append((time.perf_counter() - start) / n)
            assert cache.get_stats().disk.hits == n  # type: ignore[union-attr]
        start = time.perf_counter()
        for key, value in items:
            assert theirs.get(key) == value
        get_times["diskcache"].append((time.perf_counter() - start) / n)
        theirs.close()
        shutil.rmtree(round_dir)
    for label, times in (("put", put_times), ("get", get_times)):
        ours, theirs_time = statistics.median(times["ours"]), statistics.median(times["diskcache"])
        report(f"ours {label}", f"{ours * 1e6:7.1f} µs")
        report(f"diskcache {label}", f"{theirs_time * 1e6:7.1f} µs")
        ratio = ours / theirs_time
        report(f"ours / diskcache {label} time", f"{ratio:5.2f} x  (target <= 1)", ratio <= 1)


# -- 4. disk tier, one large array ---------------------------------------------------------
def bench_disk_array(directory: Path, megabytes: int, count: int, pause: float) -> None:
    print(f"\n4. Disk tier, one {megabytes} MB float64 array (MB/s; higher is better)")
    array = np.random.default_rng(0).random(megabytes * 1_000_000 // 8)
    size_mb = array.nbytes / 1e6
    ours_dir, theirs_dir = directory / "array-ours", directory / "array-diskcache"
    npy, raw = directory / "array.npy", directory / "array.raw"
    cache = CacheManager(
        max_size_mb=4 * megabytes, cache_dir=ours_dir, disk_max_size_mb=4 * megabytes
    )
    theirs = diskcache.Cache(
        str(theirs_dir),
        eviction_policy="least-recently-used",
        statistics=True,
        size_limit=8 * array.nbytes,
    )

    def timed(func: Callable[[], object]) -> float:
        start = time.perf_counter()
        func()
        return time.perf_counter() - start

    def put_ours() -> float:
        settle(pause)
        return timed(lambda: cache.put("field", array))

    def write_raw(path: Path) -> None:
        with open(path, "wb") as fh:
            array.tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())

    def put_raw() -> float:
        settle(pause)
        return timed(lambda: write_raw(raw))

    fresh = iter(range(1_000_000))

    def put_raw_new() -> float:
        # What any crash-safe store does: write a new file, then drop the old one. On
        # some disks (virtual ones especially) fresh blocks cost far more than rewriting
        # the same blocks in place.
        settle(pause)
        path = directory / f"array-{next(fresh)}.raw"
        seconds = timed(lambda: write_raw(path))
        for old in directory.glob("array-*.raw"):
            if old != path:
                old.unlink()
        return seconds

    def put_diskcache() -> float:
        settle(pause)
        return timed(lambda: theirs.set("field", array))

    puts = rounds(
        {
            "ours": put_ours,
            "tofile+fsync": put_raw,
            "tofile+fsync, new file": put_raw_new,
            "diskcache": put_diskcache,
        },
        count,
    )
    np.save(npy, array)
    cache.put("field", array)
    theirs.set("field", array)

    # Each result stays alive until its reader's next turn, as ours stays in the memory
    # tier, so every reader allocates its array under the same conditions.
    held: dict[str, Any] = {}

    def keep(name: str, read: Callable[[], Any]) -> float:
        held.pop(name, None)
        start = time.perf_counter()
        held[name] = read()
        return time.perf_counter() - start

    def get_ours() -> float:
        cache.shrink(0)  # the next get reads the value file
        seconds = keep("ours", lambda: cache.get("field"))
        assert cache.get_stats().entries == 1  # promoted
        return seconds

    def get_npy() -> float:
        return keep("np.load", lambda: np.load(npy))

    def get_diskcache() -> float:
        return keep("diskcache", lambda: theirs.get("field"))

    # Mapped and checked through the map; never promoted, so every get reads the disk tier.
    mapped = CacheManager(cache_dir=ours_dir, memory_map="verify")

    def get_mapped() -> float:
        return keep("ours, memory_map='verify'", lambda: mapped.get("field"))

    readers = {
        "ours": get_ours,
        "ours, memory_map='verify'": get_mapped,
        "np.load": get_npy,
        "diskcache": get_diskcache,
    }
    for warm in readers.values():  # bring every file into the page cache
        warm()
    gets = rounds(readers, count)
    np.testing.assert_array_equal(mapped.get("field"), array)
    np.testing.assert_array_equal(cache.get("field"), array)
    held.clear()
    for name, seconds in puts.items():
        report(f"put {name}", f"{size_mb / seconds:7.0f} MB/s")
    ratio = puts["tofile+fsync"] / puts["ours"]
    report("ours put / tofile+fsync", f"{ratio:5.2f} x  (target >= 0.7)", ratio >= 0.7)
    ratio = puts["tofile+fsync, new file"] / puts["ours"]
    report("ours put / tofile+fsync to a new file", f"{ratio:5.2f} x")
    report("ours put / diskcache set", f"{puts['diskcache'] / puts['ours']:5.2f} x")
    for name, seconds in gets.items():
        report(f"get {name}", f"{size_mb / seconds:7.0f} MB/s")
    ratio = gets["np.load"] / gets["ours"]
    report("ours get / np.load", f"{ratio:5.2f} x  (target >= 0.8)", ratio >= 0.8)
    report("ours get / diskcache get", f"{gets['diskcache'] / gets['ours']:5.2f} x")
    ratio = gets["np.load"] / gets["ours, memory_map='verify'"]
    report("ours get, memory_map='verify' / np.load", f"{ratio:5.2f} x")
    mapped.close()
    cache.close()
    theirs.close()
    shutil.rmtree(ours_dir)
    shutil.rmtree(theirs_dir)
    npy.unlink()
    raw.unlink()
    for path in directory.glob("array-*.raw"):
        path.unlink()


# -- 5. invalidation by tag ----------------------------------------------------------------
def bench_invalidate(directory: Path, n: int) -> None:
    print(f"\n5. Invalidate {n} entries by one tag (seconds; target <= 1 s)")
    with CacheManager(max_entries=2 * n, max_size_mb=4096) as cache:
        for i in range(n):
            cache.put(i, i, tags=("sim-7", f"patch-{i % 100}"))
        cache.put("other", 1, tags=("keep",))
        start = time.perf_counter()
        removed = cache.invalidate_by_tags(["sim-7"])
        seconds = time.perf_counter() - start
    assert removed == n
    report("ours, memory only", f"{seconds:6.3f} s", seconds <= 1.0)
    with CacheManager(max_entries=2 * n, max_size_mb=4096, cache_dir=directory / "tags") as cache:
        for i in range(n):
            cache.put(i, i, tags=("sim-7", f"patch-{i % 100}"))
        start = time.perf_counter()
        removed = cache.invalidate_by_tags(["sim-7"])
        seconds = time.perf_counter() - start
    assert removed == n
    report("ours, memory + disk", f"{seconds:6.3f} s", seconds <= 1.0)
    theirs = diskcache.Cache(str(directory / "tags-diskcache"), tag_index=True)
    for i in range(n):
        theirs.set(i, i, tag="sim-7")
    start = time.perf_counter()
    removed = theirs.evict("sim-7")
    seconds = time.perf_counter() - start
    theirs.close()
    report("diskcache evict(tag), one tag per entry", f"{seconds:6.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--dir", type=Path, default=None, help="directory for the disk tests")
    parser.add_argument(
        "--only", type=int, nargs="+", choices=range(1, 6), help="run only these sections"
    )
    args = parser.parse_args(argv)
    only = set(args.only or range(1, 6))
    quick = args.quick
    warnings.simplefilter("ignore", RuntimeWarning)
    base = Path(tempfile.mkdtemp(prefix="bench_cache_", dir=args.dir))
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, cachetools "
        f"{cachetools.__version__}, diskcache {diskcache.__version__}; disk tests in {base}"
    )
    try:
        if 1 in only:
            bench_memory_hits(1000, 20 if quick else 100, 7 if quick else 15)
        if 2 in only:
            bench_eviction((1000, 20_000 if quick else 100_000), 20_000, 3 if quick else 5)
        if 3 in only:
            bench_disk_small(base, 2500 if quick else 10_000, 3 if quick else 5)
        if 4 in only:
            bench_disk_array(base, 16 if quick else 100, 5 if quick else 9, 0.2 if quick else 1.0)
        if 5 in only:
            bench_invalidate(base, 20_000 if quick else 100_000)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    misses = [name for name, _, ok in RESULTS if ok is False]
    print(
        f"\n{sum(ok is True for *_, ok in RESULTS)} targets met, {len(misses)} missed"
        + (f": {', '.join(misses)}" if misses else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
