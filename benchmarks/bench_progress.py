"""Benchmark of ProgressManager against tqdm, rich.progress and enlighten, in one process.

1. ``update(1)`` cost while each library's live display runs on a real pseudo terminal
   (``pty.openpty()``; a thread drains the other end so writes never block). Every library
   keeps its own drawing policy — tqdm checks the clock inside ``update`` and redraws every
   0.1 s, rich and we redraw from a background thread, enlighten redraws inside ``update``
   every 0.1 s — and every call goes through the same ``functools.partial`` so call overhead
   is identical. tqdm to ``os.devnull`` (not a terminal, still formatting frames) is shown
   too. Medians of repeats, ratios to tqdm. Target: ours / tqdm <= 1.0 (stretch 0.7).
2. Bytes a one-hour job writes when output is not a terminal (a batch log), time mocked:
   one item every 50 ms, ours with the default 30 s heartbeats and a refresh every 0.25 s as
   the refresher thread does, against tqdm's default frames to the same kind of file.
3. 8 threads x 100 000 ``update(1)`` against one thread doing the same 800 000, live
   display running: throughput and whether the count is exact (tqdm's is not thread-safe).

Usage::

    python benchmarks/bench_progress.py            # 7 repeats of 200 000 calls
    python benchmarks/bench_progress.py --quick    # 3 repeats of 50 000 calls
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import pty
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO
from unittest import mock

import enlighten
import tqdm as tqdm_module
from rich.console import Console
from rich.progress import Progress
from tqdm import tqdm

from lensing_ssc.processing.managers import ProgressManager


@contextmanager
def pseudo_terminal() -> Iterator[TextIO]:
    """A writable terminal stream whose output is read and discarded by a thread."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            try:
                if not os.read(master, 1 << 16):
                    return
            except OSError:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield stream
    finally:
        done.set()
        stream.close()
        os.close(master)
        reader.join(timeout=5)


def per_call_ns(call: Callable[[], Any], calls: int) -> float:
    """Nanoseconds per call of ``call`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls * 1e9


# -- 1. update cost ---------------------------------------------------------------------
@contextmanager
def ours_live(stream: TextIO) -> Iterator[Callable[[], Any]]:
    with ProgressManager(total=10**12, description="ours", file=stream) as pm:
        assert pm.display_mode == "terminal"
        yield functools.partial(pm.update, 1)


@contextmanager
def tqdm_live(stream: TextIO) -> Iterator[Callable[[], Any]]:
    bar = tqdm(total=10**12, file=stream, desc="tqdm")
    try:
        yield functools.partial(bar.update, 1)
    finally:
        bar.close()


@contextmanager
def tqdm_devnull(_: TextIO) -> Iterator[Callable[[], Any]]:
    with open(os.devnull, "w") as sink:
        bar = tqdm(total=10**12, file=sink, desc="tqdm")
        try:
            yield functools.partial(bar.update, 1)
        finally:
            bar.close()


@contextmanager
def rich_live(stream: TextIO) -> Iterator[Callable[[], Any]]:
    progress = Progress(console=Console(file=stream, force_terminal=True))
    task = progress.add_task("rich", total=10**12)
    with progress:
        yield functools.partial(progress.update, task, advance=1)


@contextmanager
def enlighten_live(stream: TextIO) -> Iterator[Callable[[], Any]]:
    manager = enlighten.get_manager(stream=stream)
    counter = manager.counter(total=10**12, desc="enlighten")
    try:
        yield functools.partial(counter.update, 1)
    finally:
        manager.stop()


def bench_update(calls: int, repeats: int) -> dict[str, float]:
    contenders = {
        "ours (live, pty)": ours_live,
        "tqdm (pty)": tqdm_live,
        "tqdm (devnull)": tqdm_devnull,
        "rich Progress (live, pty)": rich_live,
        "enlighten (pty)": enlighten_live,
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):  # alternate contenders so load noise spreads evenly
        for name, make in contenders.items():
            with pseudo_terminal() as stream, make(stream) as update:
                per_call_ns(update, calls // 10)  # warm up, let the display start
                samples[name].append(per_call_ns(update, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


# -- 2. bytes of a one-hour batch log ---------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def hour_ours(step: float = 0.05, hour: float = 3600.0) -> int:
    clock, out = FakeClock(), io.StringIO()
    with ProgressManager(
        total=int(hour / step), description="Processing items", file=out, clock=clock
    ) as pm:
        assert pm.display_mode == "plain"
        next_refresh = 0.0
        for _ in range(int(hour / step)):
            clock.now += step
            pm.update(1)
            if clock.now >= next_refresh:
                pm.refresh()
                next_refresh += 0.25
    return len(out.getvalue().encode())


def hour_tqdm(step: float = 0.05, hour: float = 3600.0) -> int:
    clock, out = FakeClock(), io.StringIO()
    with mock.patch.object(tqdm_module.std, "time", clock):
        bar = tqdm(total=int(hour / step), desc="Processing items", file=out)
        for _ in range(int(hour / step)):
            clock.now += step
            bar.update(1)
        bar.close()
    return len(out.getvalue().encode())


# -- 3. threads -------------------------------------------------------------------------
def run_threads(update: Callable[[], Any], threads: int, per_thread: int) -> float:
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            update()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * per_thread / (time.perf_counter() - start)


def bench_threads(per_thread: int, repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, make, read in (
        ("ours", ours_live, lambda handle: handle.func.__self__.current),
        ("tqdm", tqdm_live, lambda handle: handle.func.__self__.n),
    ):
        one, eight, exact = [], [], True
        for _ in range(repeats):
            with pseudo_terminal() as stream, make(stream) as update:
                one.append(run_threads(update, 1, 8 * per_thread))
                before = read(update)
                eight.append(run_threads(update, 8, per_thread))
                exact = exact and read(update) - before == 8 * per_thread
        result[name] = (statistics.median(one), statistics.median(eight), exact)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 50 000 calls")
    args = parser.parse_args()
    calls, repeats = (50_000, 3) if args.quick else (200_000, 7)
    tqdm_module.tqdm.monitor_interval = 0  # no tqdm monitor thread in any measurement

    print(f"1. update(1) cost, median of {repeats} x {calls} calls, live displays on a pty")
    costs = bench_update(calls, repeats)
    anchor = costs["tqdm (pty)"]
    for name, ns in costs.items():
        print(f"   {name:28s} {ns:8.1f} ns/call   ratio to tqdm (pty) {ns / anchor:5.2f}")
    ours = costs["ours (live, pty)"]
    print(
        f"   ours / tqdm = {ours / anchor:.2f} (target <= 1.0, stretch <= 0.7); "
        f"ours / rich = {ours / costs['rich Progress (live, pty)']:.2f}"
    )

    print("2. bytes written to a non-terminal file by a mocked 1-hour job (1 item / 50 ms)")
    ours_bytes, tqdm_bytes = hour_ours(), hour_tqdm()
    print(f"   ours (30 s heartbeats)  {ours_bytes:>10,d} B")
    print(
        f"   tqdm (defaults)         {tqdm_bytes:>10,d} B   ratio tqdm / ours {tqdm_bytes / ours_bytes:,.0f}"
    )

    per_thread = 100_000 if not args.quick else 25_000
    print(
        f"3. throughput, 1 thread x {8 * per_thread} vs 8 threads x {per_thread}, live display on a pty"
    )
    for name, (one, eight, exact) in bench_threads(per_thread, max(3, repeats // 2)).items():
        print(
            f"   {name:5s} 1 thread {one / 1e6:6.2f} M/s   8 threads {eight / 1e6:6.2f} M/s   "
            f"ratio {eight / one:4.2f}   8-thread count exact: {exact}"
        )


if __name__ == "__main__":
    main()
