"""The figures set for update() cost and threaded throughput, measured against tqdm in the
same process. Timing-sensitive, hence ``slow``; ``benchmarks/bench_progress.py`` prints the
full comparison."""

from __future__ import annotations

import functools
import io
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lensing_ssc.processing.managers import ProgressManager

tqdm = pytest.importorskip("tqdm", reason="the anchor of these figures").tqdm

pytestmark = pytest.mark.slow


def _per_call(call: Callable[[], Any], calls: int = 100_000) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def _throughput(update: Callable[[], Any], threads: int, per_thread: int) -> float:
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


def test_update_costs_no_more_than_tqdm_manual_update() -> None:
    """update(1) with the refresher running costs at most tqdm's manual update() (median of 7)."""
    ours_times, tqdm_times = [], []
    with (
        open(os.devnull, "w") as sink,
        ProgressManager(total=10**12, file=io.StringIO(), heartbeat_interval=0.05) as pm,
    ):
        bar = tqdm(total=10**12, file=sink)
        for _ in range(7):
            ours_times.append(_per_call(functools.partial(pm.update, 1)))
            tqdm_times.append(_per_call(functools.partial(bar.update, 1)))
        bar.close()
    assert statistics.median(ours_times) <= statistics.median(tqdm_times)


def test_eight_threads_are_no_slower_than_one() -> None:
    """8 threads x 100 000 updates reach at least 0.8 x one thread's throughput, exactly."""
    with ProgressManager(file=io.StringIO(), heartbeat_interval=0.05) as pm:
        one = statistics.median(_throughput(pm.update, 1, 800_000) for _ in range(3))
        before = pm.current
        eight = statistics.median(_throughput(pm.update, 8, 100_000) for _ in range(3))
        assert pm.current - before == 3 * 800_000
    assert eight >= 0.8 * one
