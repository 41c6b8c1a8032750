"""Exact counts under threads and from worker processes (real pools, real sockets)."""

from __future__ import annotations

import io
import multiprocessing
import pickle
import socket
import threading
from concurrent.futures import ProcessPoolExecutor

import pytest

from lensing_ssc.core.base.exceptions import ProgressError
from lensing_ssc.processing.managers import ProgressManager
from lensing_ssc.processing.managers.progress._clock import LockedCount
from lensing_ssc.processing.managers.progress._manager import ProgressReporter


def _hammer(update: object, times: int, amount: int, start: threading.Barrier) -> None:
    start.wait()
    for _ in range(times):
        update(amount)  # type: ignore[operator]


def test_eight_threads_of_unit_updates_count_exactly_while_the_display_runs() -> None:
    """8 threads x 100 000 update() calls give exactly 800 000 with the refresher reading."""
    with ProgressManager(
        total=800_000, file=io.StringIO(), heartbeat_interval=0.01, refresh_per_second=200
    ) as pm:
        start = threading.Barrier(8)
        threads = [
            threading.Thread(target=_hammer, args=(pm.update, 100_000, 1, start)) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert pm.get_status()["current"] == 800_000


def test_mixed_increments_from_threads_on_a_subtask_are_exact() -> None:
    """Unit and larger increments from 8 threads on one subtask add up exactly."""
    with ProgressManager(enabled=False) as pm, pm.subprogress("patches") as sub:
        start = threading.Barrier(8)
        threads = [
            threading.Thread(target=_hammer, args=(sub.update, 20_000, 1 + i % 3, start))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sub.current == 20_000 * sum(1 + i % 3 for i in range(8))


def test_locked_counter_for_free_threaded_builds_is_exact_under_threads() -> None:
    """The lock-based counter used without a GIL counts exactly from 8 threads."""
    counter = LockedCount()
    start = threading.Barrier(8)
    threads = [
        threading.Thread(target=_hammer, args=(lambda _n: next(counter), 10_000, 1, start))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert next(iter(counter)) == 80_000


# -- worker processes -------------------------------------------------------------------
def report_items(reporter: ProgressReporter, count: int, step: int) -> int:
    """Worker: report ``count`` items, ``step`` at a time."""
    for _ in range(count // step):
        reporter.update(step)
    return count


def report_negative(reporter: ProgressReporter) -> None:
    """Worker: a bad increment."""
    reporter.update(-2)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_reports_are_exact(method: str) -> None:
    """Workers of a real process pool advance the parent's task and subtask exactly."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method} unavailable")
    context = multiprocessing.get_context(method)
    with ProgressManager(total=4000, enabled=False) as pm:
        sub = pm.subprogress("map_7", total=300)
        with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
            root_jobs = [pool.submit(report_items, pm.reporter(), 1000, 1) for _ in range(4)]
            sub_jobs = [pool.submit(report_items, sub.reporter(), 150, 3) for _ in range(2)]
            assert sum(job.result() for job in root_jobs + sub_jobs) == 4300
        assert pm.get_status()["current"] == 4000
        assert sub.current == 300
        sub.close()
        assert sub.current == 300


def test_bad_increment_in_a_worker_raises_progress_error_there() -> None:
    """A negative increment in a worker raises ProgressError, returned through the pool."""
    with ProgressManager(enabled=False) as pm, ProcessPoolExecutor(max_workers=1) as pool:
        job = pool.submit(report_negative, pm.reporter())
        with pytest.raises(ProgressError, match="got -2"):
            job.result()
        assert pm.current == 0


def test_reporter_after_the_manager_closed_is_harmless() -> None:
    """Updating through a reporter whose manager is closed neither raises nor counts."""
    pm = ProgressManager(enabled=False)
    reporter = pickle.loads(pickle.dumps(pm.reporter()))
    reporter.update(2)
    pm.close()
    reporter.update(5)
    reporter.update(5)
    assert pm.current == 2


def test_forked_child_reports_through_an_inherited_reporter() -> None:
    """A reporter used in the parent and then inherited by fork() reconnects in the child."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork unavailable")
    with ProgressManager(enabled=False) as pm:
        reporter = pm.reporter()
        reporter.update(1)
        child = multiprocessing.get_context("fork").Process(
            target=report_items, args=(reporter, 50, 1)
        )
        child.start()
        child.join()
        reporter.update(1)
        assert child.exitcode == 0
        assert pm.get_status()["current"] == 52


def test_connections_without_the_token_are_ignored() -> None:
    """A process that connects without the reporter's token cannot move the count."""
    with ProgressManager(enabled=False) as pm:
        reporter = pm.reporter()
        state = reporter.__getstate__()
        with socket.socket(state["family"], socket.SOCK_STREAM) as intruder:
            intruder.connect(state["address"])
            intruder.sendall(b"x" * 16 + b"\x00" * 8 + b"\x00\x00\x00\x00\x00\x00\xf0\x3f")
            pm.get_status()
        reporter.update(3)
        assert pm.get_status()["current"] == 3


def test_no_reporters_from_a_closed_manager() -> None:
    """Asking a closed manager for a reporter raises ProgressError instead of a stray socket."""
    pm = ProgressManager(enabled=False)
    pm.close()
    with pytest.raises(
        ProgressError, match="cannot hand out a reporter: the progress manager is closed"
    ):
        pm.reporter()
