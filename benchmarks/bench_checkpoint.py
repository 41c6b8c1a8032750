"""Benchmark of CheckpointManager against raw numpy files and a pickle + gzip save.

Everything runs in one process, alternating ours and the baseline within each repeat, so
load noise on a shared machine mostly cancels; figures are medians over repeats, ratios
the median of per-repeat ratios.

Every timed write or cold read starts from the same state of the machine: previous outputs
removed, ``os.sync()``, a pause, then free memory warmed (see :func:`warm_free_memory`).
Without that last step, on a virtual machine whose free memory goes back to the hypervisor
(virtio-balloon free page reporting), whichever side happens to write while the freed
pages are being re-faulted runs 2-5 x slower, and the ratio measures the timing of that,
not the code. A control pair (``tofile`` against ``tofile``) run under the same protocol
shows how well it works: its ratio should be close to 1.

1. Save of a 1 GiB state of ten float64 arrays (noise: incompressible, as real maps'
   mantissas are) into an empty directory, against ``ndarray.tofile`` + ``fsync`` of the
   same arrays. Target: ours >= 0.85 x raw throughput.
2. Load of it, against ``np.load`` of the same arrays saved with ``np.save``: both from the
   page cache, and both from disk (each side's files evicted first). Target: ours >= 0.8 x
   ``np.load``; memory-mapped loading for reference.
3. Re-save with one array of ten changed: bytes written / bytes of the first save.
   Target: <= 12 %.
4. What such projects do today: ``pickle.dump`` into ``gzip.open`` (+ fsync): time ratio.
5. ``save_checkpoint_async``: seconds the caller is blocked per GiB (the snapshot copy),
   repeated saves through one manager (which reuses its copy buffers); the first save,
   which copies into fresh memory, is shown apart. Target: <= 0.3 s.

Usage::

    python benchmarks/bench_checkpoint.py            # 1 GiB state (needs ~5 GB RAM, 3 GB disk)
    python benchmarks/bench_checkpoint.py --quick    # 128 MiB state
    python benchmarks/bench_checkpoint.py --dir /scratch/me   # measure another filesystem
"""

from __future__ import annotations

import argparse
import gzip
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _common import settle, warm_free_memory
from lensing_ssc.processing.managers import CheckpointManager

GIB = 1 << 30
N_ARRAYS = 10


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def make_state(total_bytes: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    per_array = total_bytes // N_ARRAYS // 8
    return {"step": 1, "maps": [rng.standard_normal(per_array) for _ in range(N_ARRAYS)]}


def raw_save(state: dict[str, Any], directory: Path) -> None:
    directory.mkdir()
    for i, arr in enumerate(state["maps"]):
        with open(directory / f"map{i}.bin", "wb") as fh:
            arr.tofile(fh)
            fh.flush()
            os.fsync(fh.fileno())
    fd = os.open(directory, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def checkpoint_save(state: dict[str, Any], directory: Path) -> None:
    with CheckpointManager(directory) as ckpt:
        ckpt.save_checkpoint(state)


def drop_cache(directory: Path) -> None:
    """Evict a directory's files from the page cache (per file: needs no privileges)."""
    os.sync()
    for path in directory.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def npy_save(state: dict[str, Any], directory: Path) -> None:
    directory.mkdir()
    for i, arr in enumerate(state["maps"]):
        np.save(directory / f"map{i}.npy", arr)


def npy_load(directory: Path) -> list[np.ndarray[Any, Any]]:
    return [np.load(directory / f"map{i}.npy") for i in range(N_ARRAYS)]


def pickle_gzip_save(state: dict[str, Any], path: Path) -> None:
    with gzip.open(path, "wb") as fh:
        pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128 MiB state instead of 1 GiB")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    parser.add_argument(
        "--pause", type=float, default=1.0, help="seconds to settle before each write"
    )
    args = parser.parse_args(argv)
    total = GIB // 8 if args.quick else GIB
    state = make_state(total)
    nbytes = sum(a.nbytes for a in state["maps"])
    gib = nbytes / GIB
    top = Path(tempfile.mkdtemp(prefix="bench_checkpoint-", dir=args.dir))
    print(f"state: {N_ARRAYS} float64 arrays, {nbytes / 2**20:.0f} MiB, in {top}")
    rows: list[tuple[str, str, str, str]] = []
    try:
        # 1. save: ours vs tofile + fsync, and tofile against itself as a control. The
        # order rotates every repeat; every write starts from the same machine state.
        saves: dict[str, list[float]] = {"ours": [], "raw": [], "control": []}
        writers: dict[str, Callable[[Path], Any]] = {
            "ours": lambda path: checkpoint_save(state, path),
            "raw": lambda path: raw_save(state, path),
            "control": lambda path: raw_save(state, path),
        }
        names = list(writers)
        for repeat in range(args.repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                for other in names:
                    fresh(top / other)
                settle(args.pause)
                warm_free_memory(2 * nbytes)
                saves[name].append(timed(lambda name=name: writers[name](top / name))[0])
        for name, times in saves.items():
            print(f"save seconds, {name}:", [f"{t:.3f}" for t in times])
        ours_save, raw = saves["ours"], saves["raw"]
        pair_ratio = statistics.median(r / o for r, o in zip(raw, ours_save, strict=True))
        control = statistics.median(r / c for r, c in zip(raw, saves["control"], strict=True))
        t_ours, t_raw = statistics.median(ours_save), statistics.median(raw)
        rows.append(
            (
                "save vs tofile+fsync",
                f"{nbytes / t_ours / 1e6:.0f} vs {nbytes / t_raw / 1e6:.0f} MB/s",
                f"{pair_ratio:.2f} x",
                "PASS" if pair_ratio >= 0.85 else "FAIL",
            )
        )
        rows.append(
            (
                "  control: tofile vs tofile",
                f"{nbytes / statistics.median(saves['control']) / 1e6:.0f} MB/s",
                f"{control:.2f} x",
                "",
            )
        )
        for name in names:
            fresh(top / name)
        checkpoint_save(state, top / "ckpt")  # what the loads below read

        # 2. load: ours vs np.load, both from the page cache (warm) and both from disk (cold)
        npy_save(state, fresh(top / "npy"))
        warm_ours, warm_np, cold_ours, cold_np, ours_mmap = [], [], [], [], []
        with CheckpointManager(top / "ckpt") as ckpt:
            ckpt.load_checkpoint()  # warm both page caches
            npy_load(top / "npy")
            for _ in range(args.repeats):
                warm_ours.append(timed(ckpt.load_checkpoint)[0])
                warm_np.append(timed(lambda: npy_load(top / "npy"))[0])
                ours_mmap.append(timed(lambda ckpt=ckpt: ckpt.load_checkpoint(mmap=True))[0])
            for _ in range(args.repeats):
                drop_cache(top / "ckpt")
                warm_free_memory(2 * nbytes)
                cold_ours.append(timed(ckpt.load_checkpoint)[0])
                drop_cache(top / "npy")
                warm_free_memory(2 * nbytes)
                cold_np.append(timed(lambda: npy_load(top / "npy"))[0])
            restored = ckpt.load_checkpoint()
            assert all(
                np.array_equal(a, b) for a, b in zip(restored["maps"], state["maps"], strict=True)
            )
            del restored
        t_ours, t_np = statistics.median(warm_ours), statistics.median(warm_np)
        ratio = t_np / t_ours
        rows.append(
            (
                "load vs np.load (page cache)",
                f"{nbytes / t_ours / 1e6:.0f} vs {nbytes / t_np / 1e6:.0f} MB/s",
                f"{ratio:.2f} x",
                "PASS" if ratio >= 0.8 else "FAIL",
            )
        )
        t_ours, t_np = statistics.median(cold_ours), statistics.median(cold_np)
        ratio = t_np / t_ours
        rows.append(
            (
                "load vs np.load (from disk)",
                f"{nbytes / t_ours / 1e6:.0f} vs {nbytes / t_np / 1e6:.0f} MB/s",
                f"{ratio:.2f} x",
                "PASS" if ratio >= 0.8 else "FAIL",
            )
        )
        rows.append(
            (
                "load, mmap=True (verified)",
                f"{nbytes / statistics.median(ours_mmap) / 1e6:.0f} MB/s",
                "",
                "",
            )
        )

        # 3. re-save with one array in ten changed
        fractions, resave_times = [], []
        for repeat in range(args.repeats):
            with CheckpointManager(fresh(top / "incr"), compression="none") as ckpt:
                settle(args.pause)
                first = ckpt.save_checkpoint(state)
                changed = {"step": 2, "maps": list(state["maps"])}
                changed["maps"][repeat % N_ARRAYS] = state["maps"][repeat % N_ARRAYS] + 1.0
                settle(args.pause)
                seconds, second = timed(
                    lambda ckpt=ckpt, changed=changed: ckpt.save_checkpoint(changed)
                )
            fractions.append(second.written_bytes / first.written_bytes)
            resave_times.append(seconds)
        fraction = statistics.median(fractions)
        rows.append(
            (
                "re-save, 10 % changed: bytes written",
                f"{fraction:.1%} ({statistics.median(resave_times):.2f} s)",
                "",
                "PASS" if fraction <= 0.12 else "FAIL",
            )
        )

        # 4. pickle + gzip, what such projects do today (one run each: it is slow)
        settle(args.pause)
        t_pickle, _ = timed(lambda: pickle_gzip_save(state, top / "state.pkl.gz"))
        with CheckpointManager(fresh(top / "ckpt")) as ckpt:
            settle(args.pause)
            t_ours_once, _ = timed(lambda ckpt=ckpt: ckpt.save_checkpoint(state))
        rows.append(
            (
                "save vs pickle+gzip",
                f"{t_ours_once:.2f} s vs {t_pickle:.2f} s",
                f"{t_pickle / t_ours_once:.1f} x faster",
                "",
            )
        )

        # 5. async save: how long the caller is blocked. The first snapshot copies into fresh
        # memory (page faults); later ones reuse the previous snapshot's buffers.
        blocked, total_async = [], []
        with CheckpointManager(fresh(top / "async")) as ckpt:
            for repeat in range(args.repeats + 1):
                for arr in state["maps"]:
                    arr[0] = repeat  # new content: the background save writes everything
                settle(args.pause)
                start = time.perf_counter()
                future = ckpt.save_checkpoint_async(state)
                blocked.append(time.perf_counter() - start)
                future.result()
                total_async.append(time.perf_counter() - start)
        print("async caller-blocked seconds:", [f"{t:.3f}" for t in blocked])
        per_gib = statistics.median(blocked[1:]) / gib
        rows.append(
            (
                "async save: caller blocked per GiB",
                f"{per_gib:.3f} s (whole save {statistics.median(total_async[1:]):.2f} s)",
                "",
                "PASS" if per_gib <= 0.3 else "FAIL",
            )
        )
        rows.append(
            ("  first async save (fresh memory)", f"{blocked[0] / gib:.3f} s per GiB", "", "")
        )
    finally:
        shutil.rmtree(top, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'figures (medians)':<40}  {'ratio':<14}  target")
    for name, figures, ratio_text, verdict in rows:
        print(f"{name:<{width}}  {figures:<40}  {ratio_text:<14}  {verdict}")
    return 1 if any(r[3] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
