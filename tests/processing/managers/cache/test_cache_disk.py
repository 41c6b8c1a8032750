"""The disk tier: persistence, raw arrays, promotion, tags, limits, corruption, safe keys."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.io import temp_name_for
from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache._disk import INLINE_LIMIT

_NEEDS_ZSTANDARD = pytest.mark.skipif(
    importlib.util.find_spec("zstandard") is None, reason="needs zstandard"
)
_NEEDS_LZ4 = pytest.mark.skipif(importlib.util.find_spec("lz4") is None, reason="needs lz4")


def _value_files(directory: Path) -> list[Path]:
    return sorted((directory / "values").glob("*/*.val"))


def _cold(directory: Path, **kwargs: object) -> CacheManager:
    """A new manager on ``directory``: empty memory, so every first get reads disk."""
    return CacheManager(cache_dir=directory, **kwargs)  # type: ignore[arg-type]


def test_values_outlive_the_process_and_are_promoted(tmp_path: Path) -> None:
    """A new manager finds earlier puts on disk and promotes them to memory."""
    with _cold(tmp_path) as cache:
        cache.put("config", {"nside": 512, "zs": [0.5, 1.0]}, tags=["meta"])
        cache.put(("map", 3), b"raw bytes")
    with _cold(tmp_path) as cache:
        assert cache.get("config") == {"nside": 512, "zs": [0.5, 1.0]}
        assert cache.get(("map", 3)) == b"raw bytes"
        assert cache.get("config") == {"nside": 512, "zs": [0.5, 1.0]}
        stats = cache.get_stats()
        assert (stats.disk.hits, stats.memory.hits, stats.hits) == (2, 1, 3)  # type: ignore[union-attr]
        assert stats.entries == 2  # promoted
        assert cache.invalidate_by_tags(["meta"]) == 1  # promoted entries keep their tags
    with _cold(tmp_path) as cache:
        assert cache.get("config") is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.arange(12.0).reshape(3, 4),
        lambda: np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4)),
        lambda: np.arange(40.0).reshape(5, 8)[::2, 1::3],
        lambda: np.zeros((0, 3), dtype=np.complex64),
        lambda: np.array(3.5, dtype=">f8"),
        lambda: np.array([(1, 2.0), (3, 4.0)], dtype=[("n", "<i4"), ("x", "<f8")]),
        lambda: np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
        lambda: np.random.default_rng(1).random((300, 300)),  # above the inline limit
        lambda: np.asfortranarray(np.random.default_rng(2).random((200, 300))),
    ],
)
def test_arrays_round_trip_raw(tmp_path: Path, make: object) -> None:
    """Arrays come back from disk with their dtype, shape, order and values, writable."""
    original = make()  # type: ignore[operator]
    with _cold(tmp_path) as cache:
        cache.put("a", original)
    with _cold(tmp_path) as cache:
        restored = cache.get("a")
    assert type(restored) is np.ndarray
    assert restored.dtype == original.dtype
    assert restored.shape == original.shape
    np.testing.assert_array_equal(restored, original)
    assert restored.flags.writeable
    if original.flags.f_contiguous and not original.flags.c_contiguous:
        assert restored.flags.f_contiguous


def test_large_arrays_go_to_value_files_small_ones_inline(tmp_path: Path) -> None:
    """Values above the inline limit get a value file; small ones live in the index."""
    with _cold(tmp_path) as cache:
        cache.put("small", np.zeros(10))
        cache.put("large", np.zeros(INLINE_LIMIT))
    files = _value_files(tmp_path)
    assert len(files) == 1
    assert files[0].stat().st_size >= INLINE_LIMIT * 8


def test_memory_map_returns_read_only_maps(tmp_path: Path) -> None:
    """memory_map=True returns large raw arrays as read-only memory maps of the value file."""
    data = np.random.default_rng(0).random((256, 256))
    with _cold(tmp_path) as cache:
        cache.put("a", data)
    with _cold(tmp_path, memory_map=True) as cache:
        mapped = cache.get("a")
        assert isinstance(mapped, np.memmap)
        assert not mapped.flags.writeable
        np.testing.assert_array_equal(mapped, data)


@pytest.mark.parametrize("order", ["C", "F"])
def test_verified_memory_maps_are_checked_read_only_maps(tmp_path: Path, order: str) -> None:
    """memory_map="verify" maps large arrays, checks them, and keeps them out of memory."""
    data = np.asarray(np.random.default_rng(0).random((300, 200)), order=order)
    with _cold(tmp_path) as cache:
        cache.put("a", data)
        cache.put("small", np.arange(5.0))
    with _cold(tmp_path, memory_map="verify") as cache:
        mapped = cache.get("a")
        assert isinstance(mapped, np.memmap)
        assert not mapped.flags.writeable
        assert mapped.flags.f_contiguous == (order == "F")
        np.testing.assert_array_equal(mapped, data)
        np.testing.assert_array_equal(cache.get("small"), np.arange(5.0))  # inline: read
        stats = cache.get_stats()
        assert stats.disk.hits == 2  # type: ignore[union-attr]
        assert stats.memory.entries == 1  # the small value only: the map stays in the page cache
    (path,) = _value_files(tmp_path)
    _corrupt_payload(path)
    with _cold(tmp_path, memory_map=True) as cache:
        assert not np.array_equal(cache.get("a"), data)  # True maps without checking
    with _cold(tmp_path, memory_map="verify") as cache:
        assert cache.get("a") is None  # "verify" notices
    assert _value_files(tmp_path) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_memory_maps_hold_no_descriptors_once_dropped(tmp_path: Path) -> None:
    """Reading many mapped values leaves no file descriptors open behind the caller."""
    with _cold(tmp_path) as cache:
        for i in range(60):
            cache.put(i, np.full(INLINE_LIMIT, float(i)))
    with _cold(tmp_path, memory_map="verify") as cache:
        cache.get(0)
        before = len(os.listdir("/proc/self/fd"))
        for i in range(60):
            assert cache.get(i)[-1] == i
        assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_non_durable_puts_skip_fsync_and_a_lost_file_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """durable=False: no fsync; the entry reads back, and misses if a power cut empties it."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    data = np.random.default_rng(3).random(INLINE_LIMIT)
    with _cold(tmp_path) as cache:
        cache.put("fast", data, durable=False)
        assert synced == []
        cache.put("safe", data)
        assert len(synced) >= 2  # the value file, and the directory it was renamed in

        def scaled(n: int) -> np.ndarray:
            return data * n

        synced.clear()
        cache.memoize(durable=False)(scaled)(2)
        assert synced == []
    with _cold(tmp_path) as cache:
        np.testing.assert_array_equal(cache.get("fast"), data)
        np.testing.assert_array_equal(cache.memoize(durable=False)(scaled)(2), data * 2)
        disk = cache.get_stats().disk
        assert disk is not None
        assert (disk.hits, disk.misses) == (2, 0)  # the second manager found both on disk
    for path in _value_files(tmp_path):
        with open(path, "r+b") as handle:
            handle.truncate(0)  # what a power cut may leave of a file never flushed
    with _cold(tmp_path) as cache:
        assert cache.get("fast") is None
        assert "fast" not in cache


@pytest.mark.parametrize(
    "codec",
    [
        pytest.param(
            "zstd",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("zstandard") is None, reason="needs zstandard"
            ),
        ),
        "gzip",
        pytest.param(
            "lz4",
            marks=_NEEDS_LZ4,
        ),
    ],
)
def test_compressed_values_round_trip(tmp_path: Path, codec: str) -> None:
    """With compression, compressible values are smaller on disk and read back equal."""
    data = np.zeros((400, 400))
    with _cold(tmp_path, compression=codec) as cache:
        cache.put("zeros", data)
        cache.put("obj", {"text": "kappa " * 10_000})
        assert cache.get_stats().disk.bytes < data.nbytes // 10  # type: ignore[union-attr]
    with _cold(tmp_path) as cache:
        np.testing.assert_array_equal(cache.get("zeros"), data)
        assert cache.get("obj") == {"text": "kappa " * 10_000}


def test_keys_never_become_paths(tmp_path: Path) -> None:
    """Keys that look like paths stay keys: every file stays inside the cache directory."""
    cache_dir = tmp_path / "cache"
    evil = ["../../escape", "/etc/passwd", "..", "a/../../b", "\0nul", "C:\\windows"]
    with _cold(cache_dir) as cache:
        for key in evil:
            cache.put(key, np.zeros(INLINE_LIMIT))
        for key in evil:
            assert cache.get(key) is not None
    outside = [path for path in tmp_path.rglob("*") if cache_dir not in path.parents]
    assert outside == [cache_dir]
    assert len(_value_files(cache_dir)) == len(evil)


def test_equal_keys_share_an_entry_across_tiers(tmp_path: Path) -> None:
    """1, 1.0 and True are one key on disk as in a dict; str and bytes are not."""
    with _cold(tmp_path) as cache:
        cache.put(("k", 1), "int")
        cache.put("s", "str")
    with _cold(tmp_path) as cache:
        assert cache.get(("k", 1.0)) == "int"
        assert cache.get(("k", True)) == "int"
        assert cache.get(b"s") is None


def test_disk_keys_must_be_encodable(tmp_path: Path) -> None:
    """A key the disk tier cannot encode is refused with CacheError naming the type."""
    with _cold(tmp_path) as cache:
        with pytest.raises(CacheError, match="cannot be stored on disk: it contains a object"):
            cache.put(("a", object()), 1)
        assert cache.get_stats().entries == 0


def test_unpicklable_value_raises_naming_key_and_type(tmp_path: Path) -> None:
    """A value the disk tier cannot serialise raises CacheError naming the key and type."""
    with _cold(tmp_path) as cache:
        with pytest.raises(CacheError, match="key 'fn' on disk: a function cannot be pickled"):
            cache.put("fn", lambda x: x)
        assert "fn" not in cache


def test_tags_on_disk_any_number_per_entry(tmp_path: Path) -> None:
    """Entries carry several tags on disk; invalidating one tag removes them everywhere."""
    with _cold(tmp_path) as cache:
        cache.put("a", 1, tags=["sim1", "smoothed", "z1"])
        cache.put("b", 2, tags=["sim1"])
        cache.put("c", 3, tags=["sim2", "smoothed"])
    with _cold(tmp_path) as cache:
        assert cache.get("a") == 1  # promoted with its tags
        assert cache.invalidate_by_tags(["smoothed"]) == 2
        assert cache.get("a") is None
        assert cache.get("c") is None
        assert cache.get("b") == 2
    with _cold(tmp_path) as cache:
        assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, None)


def test_invalidating_tags_removes_value_files(tmp_path: Path) -> None:
    """Invalidation deletes the value files of the entries it removes."""
    with _cold(tmp_path) as cache:
        cache.put("big", np.ones(INLINE_LIMIT), tags=["t"])
        assert len(_value_files(tmp_path)) == 1
        cache.invalidate_by_tags(["t"])
        assert _value_files(tmp_path) == []


def test_disk_byte_limit_evicts_least_recently_used(tmp_path: Path) -> None:
    """The disk tier keeps to its own limit, evicting by policy with reads counted."""
    block = np.zeros(100_000)  # 800 kB
    with _cold(tmp_path, disk_max_size_mb=2.5, max_size_mb=64) as cache:
        cache.put("a", block)
        cache.put("b", block)
        cache.put("c", block)
        cache.shrink(0)
        assert cache.get("a") is not None  # read from disk: now the most recent
        cache.put("d", block)
        stats = cache.get_stats().disk
        assert stats.evictions == 1
        assert stats.entries == 3  # type: ignore[union-attr]
        assert stats.bytes <= 2.5 * 1024 * 1024  # type: ignore[union-attr]
    with _cold(tmp_path) as cache:
        assert [k for k in "abcd" if k in cache] == ["a", "c", "d"]
    assert len(_value_files(tmp_path)) == 3


def test_value_too_large_for_disk_is_rejected_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A value above the disk limit stays in memory only, counted and logged."""
    with _cold(tmp_path, disk_max_size_mb=1) as cache:
        with caplog.at_level(logging.WARNING, logger="lensing_ssc"):
            cache.put("big", np.zeros(200_000))
        assert "disk tier's limit of 1.0 MiB; it is not cached" in caplog.text
        assert cache.get("big") is not None
        assert cache.get_stats().disk.rejected == 1  # type: ignore[union-attr]
    with _cold(tmp_path) as cache:
        assert cache.get("big") is None


def test_ttl_on_disk(tmp_path: Path) -> None:
    """An entry expired on disk is a miss, removed, and counted; promotion keeps the rest."""
    with _cold(tmp_path) as cache:
        cache.put("short", 1, ttl=0.05)
        cache.put("long", 2, ttl=60)
    time.sleep(0.1)
    with _cold(tmp_path) as cache:
        assert cache.get("short") is None
        assert cache.get("long") == 2
        assert cache.get_stats().disk.expirations == 1  # type: ignore[union-attr]
        assert cache.get_stats().disk.entries == 1  # type: ignore[union-attr]


def test_shrink_keeps_values_available_from_disk(tmp_path: Path) -> None:
    """After shrink frees memory, the evicted values are still served from disk."""
    with _cold(tmp_path) as cache:
        for i in range(5):
            cache.put(i, np.full(50_000, i))
        assert cache.shrink(0) > 5 * 400_000
        assert cache.get_stats().entries == 0
        assert all(cache.get(i)[0] == i for i in range(5))
        assert cache.get_stats().disk.hits == 5  # type: ignore[union-attr]


def _corrupt_payload(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(-100, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-100, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def _clobber_header(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.write(b"garbage!")


@pytest.mark.parametrize("memory_map", [False, "verify"])
@pytest.mark.parametrize("damage", [_corrupt_payload, _truncate, _clobber_header, os.unlink])
@pytest.mark.parametrize("value", [np.arange(20_000.0), {"big": list(range(50_000))}])
def test_damaged_value_file_is_a_miss_and_removed(
    tmp_path: Path, damage: object, value: object, memory_map: object
) -> None:
    """A flipped byte, truncation, a bad header or a lost file: a miss, and the entry goes."""
    with _cold(tmp_path) as cache:
        cache.put("v", value)
        cache.put("other", 1)
    (path,) = _value_files(tmp_path)
    damage(path)  # type: ignore[operator]
    with _cold(tmp_path, memory_map=memory_map) as cache:
        assert cache.get("v") is None
        assert "v" not in cache
        assert cache.get("other") == 1
        assert cache.get_stats().disk.entries == 1  # type: ignore[union-attr]
    assert _value_files(tmp_path) == []


def test_damaged_inline_value_is_a_miss_and_removed(tmp_path: Path) -> None:
    """A corrupted value inside the index is a miss, and its entry is removed."""
    with _cold(tmp_path) as cache:
        cache.put("v", {"a": 1})
    # sqlite3's own context manager commits but does not close the connection.
    with contextlib.closing(sqlite3.connect(tmp_path / "index.sqlite")) as conn, conn:
        conn.execute("UPDATE entries SET inline = ? WHERE 1", (b"\x80\x05not a pickle",))
    with _cold(tmp_path) as cache:
        assert cache.get("v") is None
        assert cache.get_stats().disk.entries == 0  # type: ignore[union-attr]


def test_unwritable_cache_dir_fails_at_construction(tmp_path: Path) -> None:
    """A cache_dir that cannot be created raises CacheError naming it, at construction."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="is not usable") as info:
        CacheManager(cache_dir=blocker / "cache")
    assert info.value.value == str(blocker / "cache")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_cache_dir_fails_at_construction(tmp_path: Path) -> None:
    """A read-only directory raises CacheError at construction, not at the first put."""
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(CacheError, match="is not usable"):
            CacheManager(cache_dir=tmp_path / "cache")
    finally:
        tmp_path.chmod(0o700)


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    """A directory whose index.sqlite is not a cache index raises CacheError."""
    (tmp_path / "index.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheError, match="is not usable"):
        CacheManager(cache_dir=tmp_path)


def test_sweep_removes_orphans_and_dead_temp_files(tmp_path: Path) -> None:
    """Old value files without an entry and temp files of dead writers are swept."""
    with _cold(tmp_path) as cache:
        cache.put("kept", np.zeros(INLINE_LIMIT))
        disk = cache._disk
        assert disk is not None
        bucket = _value_files(tmp_path)[0].parent
        orphan = bucket / "0123.deadbeef.val"
        orphan.write_bytes(b"left by a killed writer")
        os.utime(orphan, (time.time() - 3600, time.time() - 3600))
        fresh = bucket / "4567.cafebabe.val"
        fresh.write_bytes(b"a writer about to commit")
        temp = temp_name_for(bucket / "x.val")
        temp = temp.with_name(temp.name.replace(f"~{os.getpid()}~", "~999999~"))
        temp.write_bytes(b"partial")
        assert disk.sweep() == 2
        assert not orphan.exists()
        assert not temp.exists()
        assert fresh.exists()
        assert cache.get("kept") is not None


def test_index_failures_surface_as_cache_errors(tmp_path: Path) -> None:
    """A damaged index (here: a dropped table) raises CacheError naming the directory."""
    with _cold(tmp_path) as cache:
        cache.put("a", 1)
        with contextlib.closing(sqlite3.connect(tmp_path / "index.sqlite")) as conn, conn:
            conn.execute("DROP TABLE entries")
        with pytest.raises(CacheError, match=r"the cache index in .* failed: no such table"):
            cache.put("b", 2)
        with pytest.raises(CacheError, match="failed: no such table"):
            cache.delete("a")  # the lock was released: later calls fail the same clean way
        with pytest.raises(CacheError, match="failed: no such table"):
            cache.invalidate_by_tags(["x"])


def test_a_forked_child_reopens_the_index(tmp_path: Path) -> None:
    """After a fork (seen as a new pid), the disk tier opens its own connection."""
    with _cold(tmp_path) as cache:
        cache.put("a", 1)
        disk = cache._disk
        assert disk is not None
        access = disk._access
        inherited = access._index
        access._pid = -1  # what a forked child sees: the pid that opened the index is not its own
        cache.shrink(0)
        assert cache.get("a") == 1
        assert access._index is not inherited
        assert access._pid == os.getpid()
        inherited.close()


def test_replacing_a_large_value_frees_the_old_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old value file is gone before the new one is written: never both on disk."""
    from lensing_ssc.processing.managers.cache import _disk

    seen: list[list[Path]] = []
    write = _disk.write_value_file

    def watching(path: Path, encoded: object, *, durable: bool) -> None:
        seen.append(_value_files(tmp_path))
        write(path, encoded, durable=durable)  # type: ignore[arg-type]

    monkeypatch.setattr(_disk, "write_value_file", watching)
    with _cold(tmp_path) as cache:
        cache.put("field", np.zeros(INLINE_LIMIT))
        cache.put("field", np.ones(INLINE_LIMIT))
        cache.shrink(0)
        np.testing.assert_array_equal(cache.get("field"), np.ones(INLINE_LIMIT))
    assert seen[0] == []
    assert seen[1] == []
    assert len(_value_files(tmp_path)) == 1


@pytest.mark.parametrize(
    ("policy", "survivors"),
    [("lru", ["a", "c", "d"]), ("lfu", ["a", "c", "d"]), ("fifo", ["b", "c", "d"])],
)
def test_disk_eviction_follows_each_policy(
    tmp_path: Path, policy: str, survivors: list[str]
) -> None:
    """The disk tier evicts in its policy's order, counting the reads that reach it."""
    block = np.zeros(100_000)  # 800 kB; the disk holds three
    with _cold(tmp_path, disk_max_size_mb=2.5, eviction_policy=policy) as cache:
        for key in "abc":
            cache.put(key, block)
        for _ in range(2):
            cache.shrink(0)
            assert cache.get("a") is not None  # reads of "a" reach the disk tier
        cache.put("d", block)
    with _cold(tmp_path, eviction_policy=policy) as cache:
        assert [key for key in "abcd" if key in cache] == survivors
