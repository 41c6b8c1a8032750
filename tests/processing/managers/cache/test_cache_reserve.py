"""The disk tier gives way on a nearly full disk: it evicts, then stops storing, never raises."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache import _index, _reserve
from lensing_ssc.processing.managers.cache._reserve import Space

MiB = 1024 * 1024
GiB = 1024 * MiB
_LOGGER = "lensing_ssc.processing.managers.cache"


class FakeDisk:
    """A filesystem of ``capacity`` bytes: the files under ``root``, plus ``others`` bytes."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity
        self.others = 0
        self.readers: list[str] = []  # the thread of each reading

    def used(self) -> int:
        total = 0
        for path in self.root.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    total += path.stat().st_size
        return total

    def free(self) -> int:
        return max(0, self.capacity - self.used() - self.others)

    def leave_free(self, amount: int) -> None:
        """Let other files take all but ``amount`` of what is free now."""
        self.others = max(0, self.others + self.free() - amount)

    def __call__(self, path: Path) -> Space:
        self.readers.append(threading.current_thread().name)
        return Space(self.free(), self.capacity)


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDisk:
    """A 12 MiB filesystem under tmp_path, as the cache sees it."""
    fake = FakeDisk(tmp_path, 12 * MiB)
    monkeypatch.setattr(_reserve, "free_space", fake)
    return fake


def _block(i: int) -> np.ndarray:
    return np.full(MiB // 8, float(i))  # 1 MiB, in a value file


def _cold(directory: Path, **kwargs: object) -> CacheManager:
    """A new manager on ``directory``: empty memory, so every get reads disk."""
    return CacheManager(cache_dir=directory, **kwargs)  # type: ignore[arg-type]


def _files(directory: Path) -> list[Path]:
    return sorted(path for path in (directory / "values").rglob("*") if path.is_file())


def _index_rows(directory: Path) -> list[str | None]:
    with contextlib.closing(sqlite3.connect(directory / "index.sqlite")) as conn:
        return [name for (name,) in conn.execute("SELECT file FROM entries ORDER BY id")]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == _LOGGER and record.levelno == logging.WARNING
    ]


def test_reserve_makes_the_cache_evict_rather_than_fill_the_disk(
    tmp_path: Path, disk: FakeDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """Puts keep 4 MiB of a 12 MiB disk free by evicting the least recently used values."""
    with caplog.at_level(logging.INFO, logger=_LOGGER):
        with _cold(tmp_path, disk_min_free_mb=4) as cache:
            for i in range(10):
                cache.put(i, _block(i))
                assert disk.free() >= 4 * MiB
            stats = cache.get_stats().disk
            assert stats is not None
            assert stats.evictions >= 3
            assert stats.rejected == 0
        with _cold(tmp_path) as cache:
            kept = [i for i in range(10) if i in cache]
            assert kept == list(range(10 - len(kept), 10))  # the newest, oldest evicted
            assert len(kept) >= 4
            assert all(cache.get(i)[0] == i for i in kept)
    assert _warnings(caplog) == []


def test_a_disk_filled_by_others_makes_the_cache_skip_and_warn_once(
    tmp_path: Path, disk: FakeDisk, caplog: pytest.LogCaptureFixture
) -> None:
    """With no room above the reserve, puts store nothing on disk, warn once, and raise nothing."""
    disk.leave_free(3 * MiB)
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        with _cold(tmp_path, disk_min_free_mb=4, max_size_mb=64) as cache:
            for i in range(5):
                cache.put(i, _block(i))
            assert all(cache.get(i)[0] == i for i in range(5))  # the memory tier has them
            stats = cache.get_stats().disk
            assert stats is not None
            assert (stats.entries, stats.rejected) == (0, 5)
            disk.others = 0  # the other files are deleted: storing resumes
            cache.put("later", _block(7))
        with _cold(tmp_path) as cache:
            assert [key for key in [*range(5), "later"] if key in cache] == ["later"]
    (warning,) = _warnings(caplog)
    assert f"the cache in {str(tmp_path)!r} is not storing values" in warning
    assert re.search(r"nearly full \(2\.\d MiB free; the cache keeps 4\.0 MiB free", warning)
    assert warning.endswith("or lower cache.disk_min_free_mb)")
    assert _files(tmp_path) == [tmp_path / "values" / name for name in _index_rows(tmp_path)]


def test_a_skipped_put_removes_the_value_it_replaces(tmp_path: Path, disk: FakeDisk) -> None:
    """A put that finds no room does not leave the key's older value to be read later."""
    with _cold(tmp_path, disk_min_free_mb=4) as cache:
        cache.put("large", _block(1))
        cache.put("small", {"version": 1})
        disk.leave_free(3 * MiB)
        cache.put("large", _block(2))  # a value file: free space is read for it
    disk.leave_free(3 * MiB)
    with _cold(tmp_path, disk_min_free_mb=4) as cache:  # a fresh reading for small ones too
        cache.put("small", {"version": 2})
        assert cache.get("small") == {"version": 2}
    with _cold(tmp_path) as cache:
        assert (cache.get("large"), cache.get("small")) == (None, None)


def test_memoize_returns_correct_values_when_nothing_can_be_stored(
    tmp_path: Path, disk: FakeDisk
) -> None:
    """With both tiers unable to store, memoized calls compute again and return right values."""
    disk.leave_free(1 * MiB)
    calls: list[int] = []
    with _cold(tmp_path, disk_min_free_mb=4, max_size_mb=0.5) as cache:

        @cache.memoize
        def block(i: int) -> np.ndarray:
            calls.append(i)
            return _block(i)

        results = [block(i % 3) for i in range(6)]
        assert [result[0] for result in results] == [0, 1, 2, 0, 1, 2]
        assert calls == [0, 1, 2, 0, 1, 2]
    assert _index_rows(tmp_path) == []


def test_the_default_reserve_is_the_smaller_of_1_gib_and_a_tenth_of_the_disk(
    tmp_path: Path, disk: FakeDisk
) -> None:
    """On a 40 MiB disk 4 MiB stay free; on a 100 GiB disk 1 GiB does, not 10 GiB."""
    small, large = np.zeros(MiB // 32), np.zeros(2 * MiB // 8)  # 256 KiB and 2 MiB
    disk.capacity = 40 * MiB
    with _cold(tmp_path / "small") as cache:
        disk.leave_free(5 * MiB)
        cache.put("small", small)
        cache.put("large", large)  # would leave under 4 MiB, even with "small" evicted
    disk.capacity, disk.others = 100 * GiB, 0
    with _cold(tmp_path / "large") as cache:
        disk.leave_free(GiB + 2 * MiB)
        cache.put("small", small)
        cache.put("large", large)  # would leave under 1 GiB, even with "small" evicted
    for directory in ("small", "large"):
        with _cold(tmp_path / directory, disk_min_free_mb=0) as cache:
            assert ("small" in cache, "large" in cache) == (True, False)


def test_opening_a_cache_on_a_full_disk_gives_space_back(tmp_path: Path, disk: FakeDisk) -> None:
    """A cache that filled its disk before is evicted down to the reserve as it opens."""
    with _cold(tmp_path, disk_min_free_mb=0) as cache:
        for i in range(8):
            cache.put(i, _block(i))
    disk.leave_free(MiB // 2)
    with _cold(tmp_path, disk_min_free_mb=4) as cache:
        assert disk.free() >= 4 * MiB
        assert [i for i in range(8) if i in cache] == [4, 5, 6, 7]


def test_a_disk_too_full_to_record_evictions_still_gets_the_files_back(
    tmp_path: Path, disk: FakeDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every index commit failing: a put still removes value files; their keys read as misses."""

    def full(self: _index.Index) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with _cold(tmp_path, disk_min_free_mb=4) as cache:
        for i in range(6):
            cache.put(i, _block(i))
        disk.leave_free(0)
        monkeypatch.setattr(_index.Index, "commit", full)
        cache.put("new", _block(9))  # not stored, but the room is made
        assert disk.free() >= 4 * MiB
        assert cache.get_stats().disk.evictions == 0  # none recorded: the commit failed
        monkeypatch.undo()
    with _cold(tmp_path, disk_min_free_mb=0) as cache:
        kept = [i for i in range(6) if cache.get(i) is not None]
        assert kept == list(range(6 - len(kept), 6))  # the oldest went
        assert len(kept) <= 2
        assert all(np.array_equal(cache.get(i), _block(i)) for i in kept)
        assert cache.get("new") is None


def test_eviction_that_frees_nothing_stops_instead_of_emptying_the_cache(
    tmp_path: Path, disk: FakeDisk
) -> None:
    """Files still mapped by readers free no space when unlinked: one round, then it stops."""
    with _cold(tmp_path, disk_min_free_mb=0) as cache:
        for i in range(8):
            cache.put(i, _block(i))
    disk.leave_free(2 * MiB)
    frozen = disk.free()
    disk.free = lambda: frozen  # type: ignore[method-assign]  # unlinking gives nothing back
    with _cold(tmp_path, disk_min_free_mb=3) as cache:
        left = sum(i in cache for i in range(8))
    assert left >= 6, left


def test_the_index_log_is_given_back_before_values(tmp_path: Path, disk: FakeDisk) -> None:
    """Short of space, the cache first cuts its write-ahead log, keeping its values."""
    with _cold(tmp_path, disk_min_free_mb=1) as cache:
        cache.put("big", _block(1))
        for i in range(400):
            cache.put(("small", i), np.full(512, float(i)))  # 4 KiB each, in the index
        log = tmp_path / "index.sqlite-wal"
        assert log.stat().st_size > MiB
        disk.leave_free(MiB + MiB // 2)
        cache.put("next", np.zeros(64 * 1024))  # needs 512 KiB more: the log is cut instead
        assert log.stat().st_size < MiB
        assert "big" in cache
        assert "next" in cache


def test_free_space_is_not_read_on_every_small_put(tmp_path: Path, disk: FakeDisk) -> None:
    """Far from the reserve, hundreds of small puts read the free space only a few times."""
    disk.capacity = 100 * GiB
    with _cold(tmp_path) as cache:
        disk.readers.clear()
        for i in range(300):
            cache.put(i, i)
        mine = [name for name in disk.readers if name == threading.current_thread().name]
    assert len(mine) < 20


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_during_a_write_leaves_the_cache_consistent(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    code: int,
) -> None:
    """A value file cut short by a full disk: no error, no partial file, no row, room made."""
    with _cold(tmp_path, disk_min_free_mb=0) as cache:
        cache.put("old", _block(1))
        cache.put("k", _block(2))
        room = [100_000]  # bytes the disk still takes

        def filling_write(fd: int, data: bytes) -> int:
            n = min(len(data), room[0])
            if not n:
                raise OSError(code, os.strerror(code))
            room[0] -= n
            return real_write(fd, data[:n])

        real_write = os.write
        monkeypatch.setattr(os, "write", filling_write)
        with caplog.at_level(logging.WARNING, logger=_LOGGER):
            cache.put("k", _block(3))
            cache.put("k2", _block(4))
        monkeypatch.setattr(os, "write", real_write)
        assert cache.get("k")[0] == 3  # from the memory tier
        stats = cache.get_stats().disk
        assert stats is not None
        assert stats.rejected == 2
        assert stats.evictions >= 1  # room made for the next value
        (warning,) = _warnings(caplog)
        assert "disk_min_free_mb" not in warning  # it is 0: nothing to lower
    assert _files(tmp_path) == [tmp_path / "values" / name for name in _index_rows(tmp_path)]
    with _cold(tmp_path) as cache:
        assert cache.get("k") is None  # not the older value
        assert cache.get("k2") is None
        cache.put("k", _block(5))
        assert cache.get("k")[0] == 5


def test_other_write_errors_still_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error that is not a full disk is still a CacheError naming the directory."""

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with _cold(tmp_path) as cache:
        monkeypatch.setattr(os, "write", failing_write)
        with pytest.raises(CacheError, match="cannot write a value file") as info:
            cache.put("k", _block(1))
        assert info.value.value == str(tmp_path / "values")
    assert _files(tmp_path) == []


def test_a_full_index_drops_puts_and_keeps_memoize_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When SQLite reports the disk full, puts and memoized calls go on without storing."""
    with _cold(tmp_path, disk_min_free_mb=0, max_size_mb=64) as cache:
        cache.put("before", 1)
        disk_tier = cache._disk
        assert disk_tier is not None
        with disk_tier._access.locked as index:
            conn = index._conn
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLITE_FULL beyond this

        @cache.memoize
        def triple(text: str) -> str:
            return text * 3

        with caplog.at_level(logging.WARNING, logger=_LOGGER):
            for i in range(20):
                cache.put(("row", i), os.urandom(20_000))
            assert triple("ab" * 5000) == "ab" * 15000
        assert len(_warnings(caplog)) == 1
        with disk_tier._access.locked as index:
            index._conn.execute("PRAGMA max_page_count = 1073741823")
        cache.put("after", 2)
    with _cold(tmp_path) as cache:
        assert (cache.get("before"), cache.get(("row", 0)), cache.get("after")) == (1, None, 2)


def test_reads_leases_and_close_go_on_when_no_index_write_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every index commit failing for a full disk, nothing raises and results are right."""
    with _cold(tmp_path, disk_min_free_mb=0) as cache:
        cache.put("kept", {"a": 1})
        cache.put("short", 2, ttl=0.05)
    time.sleep(0.1)

    def full(self: _index.Index) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    calls: list[int] = []
    with _cold(tmp_path, disk_min_free_mb=0) as cache:
        monkeypatch.setattr(_index.Index, "commit", full)
        assert cache.get("kept") == {"a": 1}  # a read to write back at close
        assert cache.get("short") is None  # expired: its removal waits for room

        @cache.memoize
        def square(x: int) -> int:
            calls.append(x)
            return x * x

        assert [square(3), square(3), square(4)] == [9, 9, 16]  # no lease, no disk, memory
        cache.put("new", 5)
        assert cache.get("new") == 5
        with pytest.raises(CacheError, match="could neither store the new value of key 'kept'"):
            cache.put("kept", {"a": 2})  # else {"a": 1} would be read later
    monkeypatch.undo()
    assert calls == [3, 4]
    with _cold(tmp_path) as cache:
        assert cache.get("kept") == {"a": 1}
        assert (cache.get("new"), cache.get("short"), square.cache_key(3) in cache) == (
            None,
            None,
            False,
        )


def test_a_cache_that_cannot_open_on_a_full_disk_says_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's 'disk I/O error' with no free space: the error names the full disk, not a path."""
    from lensing_ssc.processing.managers.cache import _connection

    def no_room(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(_connection, "Index", no_room)
    monkeypatch.setattr(_connection, "_free_bytes", lambda directory: 0)
    with pytest.raises(CacheError, match="cannot be opened: the disk holding it is full") as info:
        CacheManager(cache_dir=tmp_path / "cache")
    assert "delete the directory" in str(info.value)
    monkeypatch.setattr(_connection, "_free_bytes", lambda directory: 10 * GiB)
    with pytest.raises(CacheError, match="is not usable: disk I/O error"):
        CacheManager(cache_dir=tmp_path / "cache")
