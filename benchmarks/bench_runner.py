"""Benchmark of the task runner: its overhead over a bare loop, and its parallel speed-up.

1. Overhead: 10 000 items of 1 ms of CPU work (a busy loop calibrated to 1 ms), run by a
   bare ``for`` loop and by ``TaskRunner("serial")`` with a durable journal (fsync group
   commit). Two ratios: the A/B ratio of wall times of alternating runs, and the in-run
   ratio, which splits each run's wall time into time inside the work and time outside it
   (other jobs on the machine slow both alike, so it holds still on a shared machine).
   The runner's own cost per item, measured on items that do no work, is printed too.
2. Speed-up: CPU-bound items on 2 workers with ``"processes"`` and ``"dask"`` (cluster
   already started; its start-up time is printed apart), over the serial runner (median of
   per-repeat ratios); joblib (loky) and a plain ``ProcessPoolExecutor.map`` run the same
   items as anchors. Worker occupancy (time inside the work / 2 x wall time) says how well
   each kept its workers fed, which other jobs on the machine hardly change.
3. Resume: a journal of ``--items`` completed no-op items is resumed in a fresh process
   (``TaskRunner.map`` with every item restored), then its results are iterated; the wall
   and CPU time of each and the process's peak RSS (``VmHWM``, over its size once the
   items were built) are printed, medians of ``--repeats`` fresh processes. Anchor: a
   fresh process doing a plain ``pickle.load`` of a list of the same results, the least a
   resume holding every result in memory can cost.

Usage::

    python benchmarks/bench_runner.py              # the figures of the issue
    python benchmarks/bench_runner.py --quick      # a fast smoke run (fewer items)
    python benchmarks/bench_runner.py --only resume --items 1000000

The load average is printed before and after: on a shared machine other work depresses
parallel speed-ups, so read them together.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ManagerContext
from lensing_ssc.processing.runner import TaskRunner


def spin(n: int) -> int:
    """Pure-Python CPU work: ``n`` additions."""
    total = 0
    for i in range(n):
        total += i
    return total


def work(item: tuple[int, int]) -> int:
    """One item: ``spins`` additions, plus the index so results differ."""
    index, spins = item
    return spin(spins) + index


def noop(item: tuple[int, int]) -> int:
    return item[0]


def calibrate(seconds: float) -> int:
    """Spins that take ``seconds`` on an undisturbed core (fastest of 9 measurements).

    The fastest rate is the one least slowed by other jobs; a median would shrink the work
    whenever the machine happened to be busy while calibrating.
    """
    n = 10_000
    while True:
        started = time.perf_counter()
        spin(n)
        took = time.perf_counter() - started
        if took > 0.02:
            break
        n *= 2
    rates = []
    for _ in range(9):
        started = time.perf_counter()
        spin(n)
        rates.append(n / (time.perf_counter() - started))
    return max(1, int(max(rates) * seconds))


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bare_loop(items: list[tuple[int, int]]) -> list[int]:
    return [work(item) for item in items]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


class TimedWork:
    """``work`` that adds up the time spent inside it, to split a run's wall time in two."""

    def __init__(self) -> None:
        self.inside = 0.0

    def __call__(self, item: tuple[int, int]) -> int:
        started = time.perf_counter()
        value = work(item)
        self.inside += time.perf_counter() - started
        return value


def overhead(count: int, repeats: int, folder: Path) -> None:
    spins = calibrate(0.001)
    items = [(index, spins) for index in range(count)]
    print(f"\n== overhead: {count} items of 1 ms CPU work, serial, durable journal")
    ab_ratios = []
    in_run_ratios = []
    extra_per_item = []
    ctx_ratios = []
    for repeat in range(repeats):
        bare_work = TimedWork()
        bare = timed(lambda: [bare_work(item) for item in items])  # noqa: B023
        runner_work = TimedWork()
        with TaskRunner("serial") as runner:
            journal = folder / f"overhead-{repeat}.journal"
            ours = timed(lambda: runner.map(runner_work, items, journal=journal))  # noqa: B023
        # Time outside the work, relative to time inside it, in the same run: other jobs on
        # the machine slow both parts alike, so this ratio holds still under load.
        in_run = (ours / runner_work.inside) / (bare / bare_work.inside)
        ab_ratios.append(ours / bare)
        in_run_ratios.append(in_run)
        # The whole ManagerContext around the runner: five managers, status file, progress,
        # log context; started and closed inside the timing.
        ctx_work = TimedWork()
        config = ProcessingConfig(
            run_dir=folder / f"ctx-{repeat}",
            logging={"console": False},
            progress={"enabled": False},
            cache={"disk": False},
        )

        def with_context(config: ProcessingConfig = config, fn: TimedWork = ctx_work) -> None:
            with ManagerContext(config=config) as ctx:
                ctx.map(fn, items, name="overhead")

        in_ctx = timed(with_context)
        ctx_ratios.append((in_ctx / ctx_work.inside) / (bare / bare_work.inside))
        extra_per_item.append(((ours - runner_work.inside) - (bare - bare_work.inside)) / count)
        print(
            f"  repeat {repeat}: bare {bare:.3f} s ({bare / bare_work.inside:.4f} x its work), "
            f"runner {ours:.3f} s ({ours / runner_work.inside:.4f} x its work); "
            f"A/B ratio {ours / bare:.4f}, in-run ratio {in_run:.4f}; "
            f"with ManagerContext {ctx_ratios[-1]:.4f}"
        )
    per_item = []
    for repeat in range(repeats):
        with TaskRunner("serial") as runner:
            journal = folder / f"noop-{repeat}.journal"
            per_item.append(timed(lambda: runner.map(noop, items, journal=journal)) / count)  # noqa: B023
    cost = statistics.median(per_item)
    print(
        f"  RESULT overhead, in-run ratio (wall / time inside work, runner over bare loop; median): "
        f"{statistics.median(in_run_ratios):.4f}  (target <= 1.02)"
    )
    extra = statistics.median(extra_per_item)
    print(
        f"  RESULT runner time outside the work, per item, beyond the bare loop's: {extra * 1e6:.1f} us "
        f"= {extra / 0.001 * 100:.2f} % of exactly 1 ms  (the item above took "
        f"{runner_work.inside / count * 1e3:.2f} ms)"
    )
    print(
        f"  RESULT ManagerContext + runner overhead, in-run ratio (whole with-block; median): "
        f"{statistics.median(ctx_ratios):.4f}  (target <= 1.02)"
    )
    print(
        f"  RESULT overhead, A/B ratio (runner wall / bare wall, alternating runs; median): "
        f"{statistics.median(ab_ratios):.4f}  (swings with other load)"
    )
    print(
        f"  RESULT runner cost per item (no-op items, keys + journal + fsync): {cost * 1e6:.1f} us "
        f"= {cost / 0.001 * 100:.2f} % of a 1 ms item"
    )


def timed_work(item: tuple[int, int]) -> tuple[int, float]:
    """``work``, also returning the seconds it ran (to see how busy the workers were)."""
    started = time.perf_counter()
    value = work(item)
    return value, time.perf_counter() - started


def _busy(results: Any) -> float:
    return sum(seconds for _, seconds in results)


def speedup(
    count: int, seconds: float, repeats: int, folder: Path, with_dask: bool, chunksize: int | str
) -> None:
    """Speed-ups (serial wall / parallel wall, per repeat) and worker occupancy.

    Occupancy is the time the 2 workers spent inside the work over 2 x the wall time: how
    well an executor kept its workers fed. Other jobs on the cores lower speed-ups but
    hardly occupancy (a preempted item still counts as inside the work).
    """
    spins = calibrate(seconds)
    items = [(index, spins) for index in range(count)]
    print(
        f"\n== speed-up: {count} CPU-bound items of {seconds * 1000:.0f} ms, 2 workers, "
        f"chunksize={chunksize}"
    )
    try:
        import joblib
    except ImportError:
        joblib = None
    dask_runner = None
    if with_dask:
        started = time.perf_counter()
        dask_runner = TaskRunner("dask", max_workers=2, chunksize=chunksize)
        dask_runner.map(noop, [(0, 0)] * 4)  # start the cluster outside the timing
        print(f"  dask LocalCluster start-up: {time.perf_counter() - started:.2f} s")
    speedups: dict[str, list[float]] = {}
    occupancy: dict[str, list[float]] = {}
    with (
        TaskRunner("processes", max_workers=2, chunksize=chunksize) as processes,
        ProcessPoolExecutor(max_workers=2) as pool,
    ):
        processes.map(noop, [(0, 0)] * 4)  # start the pool outside the timing
        list(pool.map(noop, [(0, 0)] * 4))
        runs: dict[str, Callable[[int], Any]] = {
            "processes runner": lambda r: (
                processes.map(timed_work, items, journal=folder / f"p-{r}.journal").results
            ),
            "ProcessPoolExecutor.map": lambda r: list(
                pool.map(timed_work, items, chunksize=max(1, count // 16))
            ),
        }
        if dask_runner is not None:
            runs["dask runner"] = lambda r: (
                dask_runner.map(timed_work, items, journal=folder / f"d-{r}.journal").results
            )
        if joblib is not None:
            runs["joblib loky"] = lambda r: joblib.Parallel(n_jobs=2)(
                joblib.delayed(timed_work)(item) for item in items
            )
        for repeat in range(repeats):
            with TaskRunner("serial") as serial:
                journal = folder / f"s-{repeat}.journal"
                base = timed(lambda: serial.map(work, items, journal=journal))  # noqa: B023
            for name, run in runs.items():
                box: list[Any] = []
                wall = timed(lambda: box.append(run(repeat)))  # noqa: B023
                speedups.setdefault(name, []).append(base / wall)
                occupancy.setdefault(name, []).append(_busy(box[0]) / (2 * wall))
    if dask_runner is not None:
        dask_runner.close()
    for name in speedups:
        print(
            f"  {name:<26} speed-up {statistics.median(speedups[name]):5.2f}x   "
            f"worker occupancy {statistics.median(occupancy[name]) * 100:5.1f} %   "
            f"(per repeat: {', '.join(f'{x:.2f}' for x in speedups[name])})"
        )
    print(
        f"  RESULT processes speed-up: {statistics.median(speedups['processes runner']):.2f}x "
        f"(target >= 1.8)"
    )
    if with_dask:
        print(
            f"  RESULT dask speed-up: {statistics.median(speedups['dask runner']):.2f}x "
            f"(target >= 1.6)"
        )


def _memory_mb() -> tuple[float, float]:
    """This process's resident size now and its peak since it started, in MB.

    On Linux from ``/proc/self/status`` (``VmRSS``, ``VmHWM``): ``ru_maxrss`` would also
    count what the process held between ``fork`` and ``exec``, which is the parent's size.
    """
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6
        return peak, peak
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1e3, int(fields["VmHWM"].split()[0]) / 1e3


def resume_child(mode: str, path: str, count: int) -> None:
    """In a fresh process: resume ``count`` items from the journal, or load the anchor pickle."""
    items = [(index, 0) for index in range(count)]
    before, _ = _memory_mb()
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "runner":
        with TaskRunner("serial") as runner:
            result = runner.map(noop, items, journal=path)
        if result.skipped != count:
            raise SystemExit(f"only {result.skipped} of {count} items were restored")
        results = result.results
    else:
        with open(path, "rb") as file:
            results = pickle.load(file)
    resumed, resumed_cpu = time.perf_counter() - started, time.process_time() - cpu
    _, peak_resume = _memory_mb()
    started = time.perf_counter()
    total = 0
    for index, value in enumerate(results):
        if value != index:
            raise SystemExit(f"result {index} is {value!r}")
        total += 1
    iterated = time.perf_counter() - started
    print(
        json.dumps(
            {
                "resume_s": resumed,
                "resume_cpu_s": resumed_cpu,
                "iterate_s": iterated,
                "start_mb": before,
                "resume_mb": peak_resume - before,
                "iterate_mb": _memory_mb()[1] - before,
                "count": total,
            }
        )
    )


def resume(count: int, repeats: int, folder: Path) -> None:
    """Resume time and driver peak RSS for ``count`` restored items, against the anchor.

    Each mode runs ``repeats`` times, alternating, each in a fresh process; medians are
    printed. The CPU time of the resume is printed beside its wall time: other jobs on a
    shared machine stretch the one, hardly the other.
    """
    print(f"\n== resume: {count} completed no-op items, in a fresh process, {repeats} repeats")
    journal = folder / "resume.journal"
    items = [(index, 0) for index in range(count)]
    started = time.perf_counter()
    with TaskRunner("serial", fsync=False) as runner:
        runner.map(noop, items, journal=journal)
    wrote = time.perf_counter() - started
    anchor = folder / "results.pickle"
    with open(anchor, "wb") as file:
        pickle.dump([noop(item) for item in items], file, protocol=pickle.HIGHEST_PROTOCOL)
    del items
    print(
        f"  first run: {wrote:.2f} s; journal {journal.stat().st_size / 1e6:.1f} MB, "
        f"anchor pickle {anchor.stat().st_size / 1e6:.1f} MB"
    )
    runs: dict[str, list[dict[str, float]]] = {"runner": [], "pickle": []}
    for _ in range(repeats):
        for mode, path in (("runner", journal), ("pickle", anchor)):
            done = subprocess.run(
                [sys.executable, __file__, "--resume-child", mode, str(path), str(count)],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    figures = {
        mode: {name: statistics.median(run[name] for run in done) for name in done[0]}
        for mode, done in runs.items()
    }
    for mode, label in (("runner", "runner resume"), ("pickle", "pickle.load of the results")):
        f = figures[mode]
        each = ", ".join(f"{run['resume_s']:.2f}" for run in runs[mode])
        print(
            f"  {label:<28} {f['resume_s']:6.2f} s ({f['resume_cpu_s']:5.2f} s CPU; per "
            f"repeat: {each}), then "
            f"iterating {f['iterate_s']:5.2f} s; peak RSS {f['resume_mb']:6.1f} MB over the "
            f"start after it, {f['iterate_mb']:6.1f} MB after iterating (start: "
            f"{f['start_mb']:.0f} MB, interpreter, imports, items)"
        )
    ours, base = figures["runner"], figures["pickle"]
    print(
        f"  RESULT resume of {count} items (median of {repeats}): {ours['resume_s']:.2f} s "
        f"(target <= 5 s; {ours['resume_cpu_s']:.2f} s CPU), "
        f"{ours['resume_s'] / base['resume_s']:.0f}x anchor pickle.load's {base['resume_s']:.2f} s"
    )
    print(
        f"  RESULT driver peak RSS over the start: {ours['iterate_mb']:.0f} MB = "
        f"{ours['iterate_mb'] * 1e6 / count:.0f} B per item (keys, offsets; results read back "
        f"as iterated), {ours['iterate_mb'] / max(base['iterate_mb'], 1):.1f}x anchor's "
        f"{base['iterate_mb']:.0f} MB holding every result"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parallel-items", type=int, default=200)
    parser.add_argument("--parallel-seconds", type=float, default=0.02)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer items, for a smoke run")
    parser.add_argument("--only", choices=["overhead", "speedup", "resume"], default=None)
    parser.add_argument("--resume-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.resume_child:
        mode, path, count = args.resume_child
        resume_child(mode, path, int(count))
        return
    if args.quick:
        args.items, args.parallel_items, args.repeats = 1000, 60, 1
    print(f"before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only in (None, "overhead"):
            overhead(args.items, args.repeats, folder)
        if args.only in (None, "speedup"):
            speedup(
                args.parallel_items,
                args.parallel_seconds,
                args.repeats,
                folder,
                not args.no_dask,
                "auto",
            )
            speedup(args.items // 2, 0.001, args.repeats, folder, not args.no_dask, "auto")
        if args.only in (None, "resume"):
            resume(args.items, args.repeats, folder)
    print(f"\nafter: {load()}")


if __name__ == "__main__":
    main()
