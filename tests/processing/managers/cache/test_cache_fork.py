"""A child forked while other threads use the cache can use it at once (#22, point 8).

A fork copies the forking thread only, with every lock as it was: a lock another thread held
at that moment stayed held in the child, whose first put then hung (29 of 30 children).
These tests fork for real while two threads put, and give each child a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.processing.managers import CacheManager

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

_CHILD_SECONDS = 15.0


@contextlib.contextmanager
def _busy(cache: CacheManager, threads: int = 2) -> Iterator[None]:
    """``threads`` threads putting and getting on ``cache`` until the block ends."""
    stop = threading.Event()

    def churn(worker: int) -> None:
        step = 0
        while not stop.is_set():
            cache.put((worker, step % 40), np.full(8, step), tags=["churn"])
            cache.get((worker, (step * 7) % 40))
            if step % 50 == 0:
                cache.put(("large", worker), np.zeros(40_000))  # a value file, outside the index
            step += 1

    workers = [threading.Thread(target=churn, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(0.1)
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)


def _fork(child: Callable[[], None]) -> int:
    """Fork; the child runs ``child`` and exits 0 (1 on an exception); returns the pid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    return pid


def _exit_code(pid: int, seconds: float = _CHILD_SECONDS) -> int | None:
    """The child's exit code, or ``None`` if it had not ended in ``seconds`` (then killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _use(cache: CacheManager, n: int) -> None:
    cache.put(("child", n), b"x" * 100, tags=["child"])
    assert cache.get(("child", n)) == b"x" * 100
    cache.put(("child-large", n), np.arange(30_000.0))
    np.testing.assert_array_equal(cache.get(("child-large", n)), np.arange(30_000.0))
    assert cache.memoize(_square)(n) == n * n
    cache.get_stats()
    assert cache.invalidate_by_tags(["child"]) >= 1
    cache.close()


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("disk", [True, False], ids=["memory+disk", "memory"])
def test_children_forked_while_threads_put_use_the_cache_at_once(
    tmp_path: Path, disk: bool
) -> None:
    """20 children forked while two threads put each put, get, memoize and close in time."""
    cache_dir = tmp_path / "cache" if disk else None
    codes = []
    with CacheManager(cache_dir=cache_dir, disk_min_free_mb=0) as cache, _busy(cache):
        for n in range(20):
            pid = _fork(lambda n=n: _use(cache, n))
            codes.append(_exit_code(pid))
            if codes[-1] != 0:
                break  # one hung child is enough: do not wait for twenty
        cache.put("parent", 1)  # and the parent's cache is as usable as before
        assert cache.get("parent") == 1
    assert codes == [0] * 20


def _announced(x: int, who: str, computing: threading.Event, release: threading.Event) -> str:
    """Who computed ``x + 1``; the parent's call says it started and waits for ``release``."""
    if who == "parent":
        computing.set()
        release.wait(30)
    return f"{who}:{x + 1}"


def test_a_child_waits_for_the_parents_lease_instead_of_taking_it(tmp_path: Path) -> None:
    """A child forked while the parent computes a key waits for the parent's result.

    The child must not inherit the parent's identity as a lease holder (it would take the
    parent's lease as its own and compute too) nor its per-key lock (it would hang).
    """
    computing, release = threading.Event(), threading.Event()
    with CacheManager(cache_dir=tmp_path / "cache", disk_min_free_mb=0) as cache:
        memoized = cache.memoize(key=lambda x, who, *events: x)(_announced)
        parent = threading.Thread(target=memoized, args=(41, "parent", computing, release))
        parent.start()
        assert computing.wait(10)

        def child() -> None:
            assert memoized(41, "child", computing, release) == "parent:42"  # waited for it

        pid = _fork(child)
        time.sleep(0.5)  # the child is waiting on the parent's lease by now
        release.set()
        parent.join(10)
        assert _exit_code(pid) == 0


def test_a_child_forked_while_a_call_waits_on_the_index_goes_on_in_memory(
    tmp_path: Path,
) -> None:
    """A put waiting on another connection's transaction holds the index past the fork's
    wait: the child does not touch SQLite's copied state, and uses its memory tier only."""
    directory = tmp_path / "cache"
    with CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache:
        blocker = sqlite3.connect(directory / "index.sqlite", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer, for the whole fork
        waiting = threading.Thread(target=cache.put, args=("parent", b"p" * 10))
        waiting.start()
        time.sleep(0.3)  # the put now waits inside SQLite, holding the index

        def child() -> None:
            cache.put("child", 1)
            assert cache.get("child") == 1
            assert "forked while another thread waited" in cache.get_status()["disk_bypassed"]
            cache.close()

        started = time.monotonic()
        pid = _fork(child)
        assert 1.5 < time.monotonic() - started < 10  # the fork waited, and not for ever
        assert _exit_code(pid) == 0
        blocker.execute("ROLLBACK")
        blocker.close()
        waiting.join(30)
        assert cache.get("parent") == b"p" * 10
        assert cache.get_status()["disk_bypassed"] is None
