"""CacheDirectory: a run's disk cache opened to count, clear or invalidate it, never to store."""

from __future__ import annotations

from pathlib import Path

import pytest

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache import CacheDirectory


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A cache directory with two entries tagged 'maps' and one tagged 'theory'."""
    with CacheManager(cache_dir=tmp_path / "cache") as cache:
        cache.put("a", b"x" * 10, tags=["maps"])
        cache.put("b", b"y" * 10, tags=["maps"])
        cache.put("c", 1.5, tags=["theory"])
    return tmp_path / "cache"


def test_a_directory_without_an_index_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """Opening a directory that holds no cache raises CacheError and creates nothing."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not CacheDirectory.holds_cache(empty)
    with pytest.raises(CacheError, match="no cache in") as caught:
        CacheDirectory(empty)
    assert caught.value.value == str(empty)
    assert list(empty.iterdir()) == []


def test_totals_count_entries_and_tags_of_every_process(cache_dir: Path) -> None:
    """totals() reports the entries the directory holds and how many carry each tag."""
    assert CacheDirectory.holds_cache(cache_dir)
    with CacheDirectory(cache_dir) as directory:
        totals = directory.totals()
    assert totals["entries"] == 3
    assert totals["tags"] == {"maps": 2, "theory": 1}


def test_invalidate_and_clear_remove_entries_for_the_next_cache(cache_dir: Path) -> None:
    """invalidate() and clear() return what they removed, and a cache opened later misses it."""
    with CacheDirectory(cache_dir) as directory:
        assert directory.invalidate(["maps"]) == 2
        assert directory.clear() == 1
    with CacheManager(cache_dir=cache_dir) as cache:
        assert cache.get("a") is None
        assert cache.get("c") is None
