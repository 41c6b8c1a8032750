"""``CacheManager.memoize``: keys from arguments, compute-once in threads and processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache._disk import DiskTier
from lensing_ssc.processing.managers.cache._keys import encode_key
from lensing_ssc.processing.managers.cache._memoize import (
    ComputeOnce,
    Lease,
    lease_holder,
    take_lease,
)
from lensing_ssc.processing.managers.cache._memory import MISSING


def test_memoize_computes_each_call_once() -> None:
    """Equal calls (positional, keyword or defaulted alike) compute once; others compute."""
    calls: list[tuple[float, float]] = []
    with CacheManager() as cache:

        @cache.memoize
        def spectrum(ell: float, omega_m: float = 0.3) -> float:
            calls.append((ell, omega_m))
            return ell * omega_m

        assert spectrum(10) == pytest.approx(3.0)
        assert spectrum(10, 0.3) == pytest.approx(3.0)
        assert spectrum(ell=10, omega_m=0.3) == pytest.approx(3.0)
        assert spectrum(10, omega_m=0.25) == pytest.approx(2.5)
        assert calls == [(10, 0.3), (10, 0.25)]
        assert spectrum.__name__ == "spectrum"
        assert cache.get_stats().hits == 2


def test_memoize_hashes_arrays_by_content() -> None:
    """An equal array in a new object is a hit; a changed array is a miss."""
    calls = []
    with CacheManager() as cache:

        @cache.memoize()
        def total(kappa: np.ndarray) -> float:
            calls.append(1)
            return float(kappa.sum())

        field = np.arange(1000.0)
        assert total(field) == total(field.copy()) == 499500.0
        field[0] = 1.0
        assert total(field) == 499501.0
        assert total(np.asfortranarray(np.arange(6.0).reshape(2, 3))) == total(
            np.arange(6.0).reshape(2, 3)
        )
        assert len(calls) == 3


def test_memoize_ttl_and_tags_apply_to_results() -> None:
    """Results carry the decorator's tags and ttl."""
    calls = []
    with CacheManager() as cache:

        @cache.memoize(ttl=60, tags=["theory"])
        def cl(ell: int) -> int:
            calls.append(ell)
            return ell * 2

        cl(1)
        cl(2)
        assert cache.invalidate_by_tags(["theory"]) == 2
        cl(1)
        assert calls == [1, 2, 1]


def test_memoize_refuses_arguments_without_a_canonical_key() -> None:
    """An argument that cannot be hashed by value names itself; key= is the way out."""
    with CacheManager() as cache:

        @cache.memoize
        def use(handle: object, n: int) -> int:
            return n

        with pytest.raises(CacheError, match="argument 'handle' of type lock") as info:
            use(threading.Lock(), 1)
        assert "memoize(key=...)" in str(info.value)

        @cache.memoize(key=lambda handle, n: n)
        def use_keyed(handle: object, n: int) -> int:
            return n * 10

        assert use_keyed(threading.Lock(), 2) == use_keyed(threading.Lock(), 2) == 20
        assert cache.get_stats().hits == 1


def test_memoize_does_not_cache_exceptions() -> None:
    """A call that raises is not cached; the next call computes again."""
    attempts = []
    with CacheManager() as cache:

        @cache.memoize
        def flaky(x: int) -> int:
            attempts.append(x)
            if len(attempts) == 1:
                raise RuntimeError("transient")
            return x

        with pytest.raises(RuntimeError, match="transient"):
            flaky(1)
        assert flaky(1) == 1
        assert attempts == [1, 1]


def test_memoize_identity_includes_the_source() -> None:
    """Two functions with one name but different code never share results."""
    namespace_a: dict[str, object] = {}
    namespace_b: dict[str, object] = {}
    exec("def f(x):\n    return x + 1\n", namespace_a)
    exec("def f(x):\n    return x + 2\n", namespace_b)
    with CacheManager() as cache:
        first = cache.memoize(namespace_a["f"])  # type: ignore[arg-type]
        second = cache.memoize(namespace_b["f"])  # type: ignore[arg-type]
        assert (first(1), second(1)) == (2, 3)
        assert first.cache_key(1) != second.cache_key(1)  # type: ignore[attr-defined]


def test_concurrent_threads_compute_a_missing_key_once() -> None:
    """Eight threads asking for one missing key: one computes, all get its result."""
    calls = []
    start = threading.Barrier(8)
    with CacheManager() as cache:

        @cache.memoize
        def slow(x: int) -> list[int]:
            calls.append(x)
            time.sleep(0.2)
            return [x]

        results: list[list[int]] = []

        def worker() -> None:
            start.wait()
            results.append(slow(7))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert calls == [7]
    assert results == [[7]] * 8
    assert len({id(result) for result in results}) == 1


def _logged_power(x: int, log: Path) -> int:
    with log.open("a") as out:
        out.write(f"{x}\n")
    return x**2


def test_memoized_results_persist_on_disk(tmp_path: Path) -> None:
    """With a disk tier, a later manager finds results computed earlier."""
    log = tmp_path / "calls"
    with CacheManager(cache_dir=tmp_path / "cache") as cache:
        assert cache.memoize(_logged_power)(9, log) == 81
    with CacheManager(cache_dir=tmp_path / "cache") as cache:
        assert cache.memoize(_logged_power)(9, log) == 81
    assert log.read_text() == "9\n"


_WORKER = textwrap.dedent(
    """
    import sys, time
    from lensing_ssc.processing.managers import CacheManager

    cache_dir, log, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with CacheManager(cache_dir=cache_dir) as cache:
        def slow(x):
            with open(log, "a") as fh:
                fh.write("computed\\n")
            print("computing", flush=True)
            time.sleep(delay)
            return x * 3
        slow.__module__ = "shared_worker"
        result = cache.memoize(slow)(14)
    print("result", result, flush=True)
    """
)


def _spawn(cache_dir: Path, log: Path, delay: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(cache_dir), str(log), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_processes_compute_a_missing_key_once(tmp_path: Path) -> None:
    """Four processes sharing a cache directory: one computes, all return its result."""
    log = tmp_path / "log"
    workers = [_spawn(tmp_path / "cache", log, 1.0) for _ in range(4)]
    outputs = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, outputs
    assert all(out.strip().endswith("result 42") for out, _ in outputs)
    assert log.read_text().count("computed") == 1


def test_lease_of_a_killed_holder_is_taken_over_at_once(tmp_path: Path) -> None:
    """SIGKILL the computing process: a waiting one takes over without waiting for expiry."""
    log = tmp_path / "log"
    holder = _spawn(tmp_path / "cache", log, 60.0)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "computing"
    waiter = _spawn(tmp_path / "cache", log, 0.0)
    time.sleep(0.5)
    assert waiter.poll() is None  # waiting on the live holder's lease
    started = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=10)
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert out.strip().endswith("result 42")
    assert time.monotonic() - started < 10  # far below the 60 s lease
    assert log.read_text().count("computed") == 2


def test_expired_lease_of_another_host_is_taken_over(tmp_path: Path) -> None:
    """A lease held from another host is respected until it expires, then taken over."""
    with CacheManager(cache_dir=tmp_path) as cache:

        def answer() -> int:
            return 42

        memoized = cache.memoize(answer)
        key = encode_key(memoized.cache_key())  # type: ignore[attr-defined]
        disk = cache._disk
        assert disk is not None
        with disk.lease_transaction() as conn:
            other = "elsewhere-" + socket.gethostname()
            now = time.time()
            take_lease(conn, key, Lease("someone", other, os.getpid(), now + 0.5, now, 30.0))
        started = time.monotonic()
        assert memoized() == 42
        assert 0.4 < time.monotonic() - started < 5


def test_a_holder_on_another_host_blocks_while_it_beats_and_not_after(tmp_path: Path) -> None:
    """A lease from host node-b is honoured while renewed, taken over 3 beats after it stops."""
    with CacheManager(cache_dir=tmp_path, lease_ttl=60) as cache:
        disk = cache._disk
        assert disk is not None
        node_b = ComputeOnce(disk, lease_ttl=60, heartbeat=0.05, host="node-b")
        started, release, computed = threading.Event(), threading.Event(), threading.Event()

        # The event travels as an argument that key= leaves out: a captured one cannot be keyed.
        def answer(done: threading.Event) -> int:
            done.set()
            return 42

        memoized = cache.memoize(key=lambda done: "answer")(answer)
        key = memoized.cache_key(computed)  # type: ignore[attr-defined]

        def held_by_node_b() -> int:
            started.set()
            release.wait(30)
            return 7

        def peek(k: object) -> object:
            return MISSING

        holder = threading.Thread(
            target=node_b.run, args=(key, held_by_node_b, peek, lambda k, v: None)
        )
        holder.start()
        assert started.wait(10)
        holder_row = _lease_row(disk, key)
        assert (holder_row.host, holder_row.beat) == ("node-b", 0.05)
        results: list[int] = []
        waiter = threading.Thread(target=lambda: results.append(memoized(computed)))
        waiter.start()
        assert not computed.wait(0.5)  # ten beats: node-b is alive, so this one waits
        node_b.close()  # node-b's renewals stop, as when its node is lost
        assert computed.wait(10)
        waiter.join(10)
        assert results == [42]
        release.set()
        holder.join(10)


def test_a_stale_heartbeat_from_another_host_is_taken_over_long_before_expiry(
    tmp_path: Path,
) -> None:
    """A node-b lease valid for 60 s but silent for 4 beats is taken over at once."""
    with CacheManager(cache_dir=tmp_path) as cache:

        def answer() -> int:
            return 42

        memoized = cache.memoize(answer)
        key = encode_key(memoized.cache_key())  # type: ignore[attr-defined]
        disk = cache._disk
        assert disk is not None
        now = time.time()
        with disk.lease_transaction() as conn:
            take_lease(conn, key, Lease("someone", "node-b", 4242, now + 60, now - 20, 5.0))
        started = time.monotonic()
        assert memoized() == 42
        assert time.monotonic() - started < 5


def _lease_row(disk: DiskTier, key: object) -> Lease:
    with disk.lease_transaction() as conn:
        found = lease_holder(conn, encode_key(key))
    assert found is not None
    return found
