"""One cache directory, several real processes: concurrent use, and writers killed mid-put."""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.processing.managers import CacheManager

_HAMMER = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    from lensing_ssc.processing.managers import CacheManager

    cache_dir, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(worker)
    # A tiny memory tier sends most gets to disk, where the processes meet.
    with CacheManager(max_entries=8, cache_dir=cache_dir) as cache:
        for i in range(count):
            value = np.full(1 + i % 50, worker * 100_000 + i) if i % 3 else (worker, i, "x" * i)
            cache.put((worker, i), value, tags=[f"w{worker}", f"m{i % 7}"])
            other = (rng.randrange(4), rng.randrange(count))
            found = cache.get(other)
            if found is not None:
                expected = other[0] * 100_000 + other[1]
                ok = found[0] == other[0] if isinstance(found, tuple) else found[0] == expected
                assert ok, (other, found)
            mine = cache.get((worker, i))
            assert mine is not None, i
        disk = cache.get_stats().disk
    print("done", disk.hits, disk.misses, flush=True)
    """
)


def _check_index(cache_dir: Path) -> tuple[int, int]:
    """Integrity and totals of the index; returns (entries, bytes)."""
    with contextlib.closing(sqlite3.connect(cache_dir / "index.sqlite")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count, size = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM entries"
        ).fetchone()
        totals = conn.execute("SELECT entries, bytes FROM totals").fetchone()
        orphan_tags = conn.execute(
            "SELECT count(*) FROM tags WHERE entry NOT IN (SELECT id FROM entries)"
        ).fetchone()
    assert totals == (count, size)
    assert orphan_tags == (0,)
    return count, size


def test_four_processes_share_one_cache_dir(tmp_path: Path) -> None:
    """4 processes x 1000 puts and gets at once: no errors, nothing dropped, totals exact."""
    cache_dir = tmp_path / "cache"
    CacheManager(cache_dir=cache_dir).close()
    count = 1000
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, str(cache_dir), str(worker), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(4)
    ]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, outputs
    assert _check_index(cache_dir)[0] == 4 * count
    reported = [tuple(map(int, out.split()[1:])) for out, _ in outputs]
    with CacheManager(cache_dir=cache_dir) as cache:
        totals = cache._disk.totals()  # type: ignore[union-attr]
        # every process's disk hits and misses reached the shared totals, none lost
        assert totals["hits"] == sum(hits for hits, _ in reported)
        assert totals["misses"] == sum(misses for _, misses in reported)
        for worker in range(4):
            for i in range(count):
                value = cache.get((worker, i))
                if i % 3:
                    assert value[0] == worker * 100_000 + i
                else:
                    assert value == (worker, i, "x" * i)
        cache.shrink(0)
        assert cache.invalidate_by_tags(["w2"]) == count
        assert cache.invalidate_by_tags(["m0"]) == 3 * len(range(0, count, 7))


_LOOKER = textwrap.dedent(
    """
    import sys
    from lensing_ssc.processing.managers import CacheManager

    cache_dir, hits, misses = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with CacheManager(cache_dir=cache_dir) as cache:  # an empty memory tier: gets go to disk
        assert all(cache.get(("kept", i)) == i for i in range(hits))
        assert all(cache.get(("absent", i)) is None for i in range(misses))
    """
)


def _look(cache_dir: Path, hits: int, misses: int) -> None:
    """Make ``hits`` disk hits and ``misses`` misses in a process of their own."""
    done = subprocess.run(
        [sys.executable, "-c", _LOOKER, str(cache_dir), str(hits), str(misses)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_shared_stats_count_every_process_since_this_cache_opened(tmp_path: Path) -> None:
    """get_stats().shared has other processes' disk lookups made after it opened, not before."""
    cache_dir = tmp_path / "cache"
    with CacheManager(cache_dir=cache_dir) as earlier:
        for i in range(5):
            earlier.put(("kept", i), i)
    _look(cache_dir, hits=3, misses=2)  # an earlier run's lookups
    with CacheManager(cache_dir=cache_dir) as cache:
        _look(cache_dir, hits=4, misses=1)
        _look(cache_dir, hits=2, misses=3)
        assert cache.get(("kept", 0)) == 0  # from disk
        assert cache.get(("kept", 0)) == 0  # from this process's memory
        stats = cache.get_stats()
    assert stats.shared is not None
    assert (stats.shared.hits, stats.shared.misses) == (4 + 2 + 1, 1 + 3)
    assert stats.shared.hit_rate == pytest.approx(7 / 11)
    assert (stats.hits, stats.misses) == (2, 0)  # this process's own, memory hit included
    with CacheManager(cache_dir=None) as memory_only:
        assert memory_only.get_stats().shared is None


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from lensing_ssc.processing.managers import CacheManager

    cache_dir, start = sys.argv[1], int(sys.argv[2])
    with CacheManager(max_entries=4, cache_dir=cache_dir, disk_max_size_mb=24) as cache:
        print("ready", flush=True)
        i = start
        while True:
            size = (1 + i % 5) * 100_000 if i % 2 else 1 + i % 100
            # Half the puts skip fsync: only a power cut may lose those, never a kill.
            cache.put(i, np.full(size, float(i)), tags=[f"t{i % 3}"], durable=i % 4 < 2)
            i += 1
    """
)


def _kill_writers(cache_dir: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    for round_ in range(rounds):
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(cache_dir), str(round_ * 10_000)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=30)
        assert writer.returncode == -signal.SIGKILL
        _check_consistent(cache_dir)


def _check_consistent(cache_dir: Path) -> None:
    entries, _ = _check_index(cache_dir)
    with contextlib.closing(sqlite3.connect(cache_dir / "index.sqlite")) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM entries")]
    assert len(keys) == entries
    with CacheManager(max_entries=4, cache_dir=cache_dir, disk_max_size_mb=24) as cache:
        for raw in keys:
            i = int(raw[1:-1])  # canonical encoding of an int key: b"i<n>:"
            value = cache.get(i)
            assert value is not None, f"entry {i} unreadable after a kill"
            assert value.shape == ((1 + i % 5) * 100_000 if i % 2 else 1 + i % 100,)
            assert np.all(value == float(i))
        assert cache.get_stats().disk.entries == entries  # type: ignore[union-attr]
        disk = cache._disk
        assert disk is not None
        disk.sweep(orphan_age=0)
        referenced = disk._access._index.files()
        on_disk = {f"{p.parent.name}/{p.name}" for p in (cache_dir / "values").glob("*/*")}
        assert on_disk == referenced  # no orphan or temp file survives a sweep


def test_writer_killed_mid_put_leaves_the_cache_consistent(tmp_path: Path) -> None:
    """SIGKILL a writer at random moments: every entry, durable or not, reads back right."""
    _kill_writers(tmp_path / "cache", rounds=4, seed=1)


@pytest.mark.slow
def test_writer_killed_mid_put_many_times(tmp_path: Path) -> None:
    """Thirty SIGKILLs at random moments never leave a torn entry or wrong totals."""
    _kill_writers(tmp_path / "cache", rounds=30, seed=2)


def test_processes_in_delete_mode_keep_every_entry(tmp_path: Path) -> None:
    """An index opened in DELETE mode stays so for 'auto' openers; 4 writers lose nothing."""
    cache_dir = tmp_path / "cache"
    CacheManager(cache_dir=cache_dir, journal_mode="delete").close()
    count = 150
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _HAMMER, str(cache_dir), str(worker), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(4)
    ]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, outputs
    assert not (cache_dir / "index.sqlite-wal").exists()
    with contextlib.closing(sqlite3.connect(cache_dir / "index.sqlite")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert _check_index(cache_dir)[0] == 4 * count
    with CacheManager(cache_dir=cache_dir) as cache:
        assert cache.get_status()["index_journal_mode"] == "delete"
        assert all(cache.get((worker, 1))[0] == worker * 100_000 + 1 for worker in range(4))
