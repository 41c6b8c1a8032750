"""A damaged cache index is replaced by an empty one, and the cache goes on (#22, point 16).

Before, a damaged ``index.sqlite`` made every cache that opened it fail ("database disk
image is malformed"), a pipeline run with it, and ``lensing-ssc cache clear`` as well.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.processing.managers import CacheManager

_PAGE = 4096


def _fill(directory: Path, entries: int = 50) -> None:
    """A cache directory with ``entries`` small entries and one value file."""
    with CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache:
        for n in range(entries):
            cache.put(("small", n), np.full(50, n), tags=["small"])
        cache.put("large", np.arange(100_000.0))


def _damage(index: Path, where: str) -> None:
    """Overwrite the index's header (``"header"``), or every page after the first."""
    data = bytearray(index.read_bytes())
    if where == "header":
        data[:100] = b"\xa5" * 100
    else:
        data[_PAGE:] = b"\xa5" * (len(data) - _PAGE)
    index.write_bytes(bytes(data))


def _value_files(directory: Path) -> list[Path]:
    return sorted((directory / "values").glob("*/*.val"))


@pytest.mark.parametrize("where", ["header", "pages"])
def test_a_cache_opening_a_damaged_index_replaces_it_and_works(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening replaces the damaged index by an empty one, logs why, and removes its files."""
    directory = tmp_path / "cache"
    _fill(directory)
    assert len(_value_files(directory)) == 1
    _damage(directory / "index.sqlite", where)
    with (
        caplog.at_level(logging.WARNING, logger="lensing_ssc"),
        CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache,
    ):
        assert cache.get(("small", 3)) is None
        cache.put("after", [1, 2])
    assert "was damaged" in caplog.text
    assert "replaced by an empty one, and its 1 value files (0.8 MiB) removed" in caplog.text
    assert _value_files(directory) == []
    with CacheManager(cache_dir=directory) as cache:
        assert cache.get("after") == [1, 2]
        assert cache.get_status()["disk_bypassed"] is None


def test_an_index_damaged_under_an_open_cache_is_replaced_and_reads_are_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every read gives the right value or a miss, never an error; the cache then works."""
    directory = tmp_path / "cache"
    _fill(directory)
    with CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache:
        _damage(directory / "index.sqlite", "pages")
        with caplog.at_level(logging.WARNING, logger="lensing_ssc"):
            for n in range(50):
                found = cache.get(("small", n))
                assert found is None or (found == n).all()
                assert (("small", n) in cache) in (True, False)
        assert "replaced by an empty one" in caplog.text
        cache.put("after", 7)
        cache.invalidate_by_tags(["small"])
        assert [cache.get(("small", n)) for n in range(50)] == [None] * 50
    with CacheManager(cache_dir=directory) as cache:
        assert cache.get("after") == 7


def test_memoize_computes_through_a_damaged_index(tmp_path: Path) -> None:
    """A memoized call over a damaged index computes its value instead of failing."""
    directory = tmp_path / "cache"
    _fill(directory)
    with CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache:
        square = cache.memoize(_square)
        _damage(directory / "index.sqlite", "pages")
        assert [square(n) for n in range(5)] == [0, 1, 4, 9, 16]
        cache.get_stats()


def _square(x: int) -> int:
    return x * x


def test_an_index_that_cannot_be_replaced_leaves_the_process_in_memory_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When the replacement fails, the cache goes on without its disk tier, saying so once."""
    directory = tmp_path / "cache"
    _fill(directory)
    (directory / "index.sqlite.lock").mkdir()  # the replacement cannot take its lock
    with CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache:
        _damage(directory / "index.sqlite", "pages")
        with caplog.at_level(logging.WARNING, logger="lensing_ssc"):
            for n in range(50):
                cache.get(("small", n))
            cache.put("kept", 1)
            assert cache.get("kept") == 1
            assert cache.memoize(_square)(4) == 16
        reason = cache.get_status()["disk_bypassed"]
        assert reason is not None
        assert "damaged" in reason
        assert cache.get_stats().disk is None
    assert caplog.text.count("goes on in memory only in this process") == 1


def test_opening_an_index_that_cannot_be_replaced_gives_a_memory_only_cache(
    tmp_path: Path,
) -> None:
    """At opening too: the manager is built without its disk tier instead of failing."""
    directory = tmp_path / "cache"
    _fill(directory)
    (directory / "index.sqlite.lock").mkdir()
    _damage(directory / "index.sqlite", "header")
    with CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache:
        assert "damaged" in cache.get_status()["disk_bypassed"]
        cache.put("k", 1)
        assert cache.get("k") == 1


def test_a_second_cache_meeting_the_damage_keeps_the_first_ones_new_index(
    tmp_path: Path,
) -> None:
    """Two caches (as two processes) meet one damage: the index is replaced once only."""
    directory = tmp_path / "cache"
    _fill(directory)
    with (
        CacheManager(cache_dir=directory, disk_min_free_mb=0) as first,
        CacheManager(cache_dir=directory, disk_min_free_mb=0) as second,
    ):
        _damage(directory / "index.sqlite", "pages")
        for n in range(50):
            first.get(("small", n))
        first.put("new", 1)
        for n in range(50):
            second.get(("small", n))
        assert second.get("new") == 1
        assert second.get_status()["disk_bypassed"] is None


def test_threads_meeting_one_damage_at_once_replace_it_once_and_keep_the_disk(
    tmp_path: Path,
) -> None:
    """Calls that all ran on the damaged index count as one damage: the disk tier stays."""
    directory = tmp_path / "cache"
    _fill(directory, entries=400)
    with CacheManager(cache_dir=directory, disk_min_free_mb=0) as cache:
        _damage(directory / "index.sqlite", "pages")
        start = threading.Barrier(4)

        def read(first: int) -> None:
            start.wait()
            for n in range(first, 400, 4):
                cache.get(("small", n))

        threads = [threading.Thread(target=read, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert cache.get_status()["disk_bypassed"] is None
        cache.put("after", 1)
    with CacheManager(cache_dir=directory) as cache:
        assert cache.get("after") == 1


def test_a_file_in_a_directory_that_never_held_a_cache_is_refused_not_replaced(
    tmp_path: Path,
) -> None:
    """An unreadable index.sqlite without values/ beside it may be someone's file: kept."""
    foreign = tmp_path / "index.sqlite"
    foreign.write_bytes(b"someone else's data" * 100)
    with pytest.raises(CacheError, match="is not a cache index"):
        CacheManager(cache_dir=tmp_path)
    assert foreign.read_bytes() == b"someone else's data" * 100


def test_a_pipeline_run_goes_on_over_a_damaged_cache(tmp_path: Path) -> None:
    """A run whose cache index is damaged completes, and measures the same statistics."""
    from lensing_ssc.pipelines import PipelineConfig, read_results, run_patch_statistics

    def config(run: str) -> PipelineConfig:
        return PipelineConfig(
            run_dir=tmp_path / run,
            logging={"console": False, "format": "json"},
            progress={"enabled": False},
            cache={"dir": tmp_path / "shared-cache"},
            pipeline={
                "executor": "serial",
                "figures": False,
                "synthetic": {"patch_pixels": 64, "patches_per_side": 2, "n_large_fields": 1},
            },
        )

    first = read_results(run_patch_statistics(config("first")).results_file)
    _damage(tmp_path / "shared-cache" / "index.sqlite", "pages")
    second = read_results(run_patch_statistics(config("second")).results_file)
    for key, value in first.items():
        if not key.startswith("meta/"):
            np.testing.assert_array_equal(second[key], value, err_msg=key)
    with sqlite3.connect(tmp_path / "shared-cache" / "index.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
