"""CacheManager's public surface: the README's examples, settings, statistics, status, errors."""

from __future__ import annotations

import json
import logging
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from lensing_ssc.core.base.exceptions import CacheError, ConfigError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache._manager import CacheStats, TierStats

MB = 1024 * 1024


def test_readme_example_runs_as_written() -> None:
    """The README's CacheManager example works: compute once, tags, hit rate."""
    cache = CacheManager(max_size_mb=512, max_entries=1000)
    calls = []

    def perform_computation(params: dict[str, int]) -> int:
        calls.append(params)
        return sum(params.values())

    def expensive_function(params: dict[str, int]) -> int:
        key = f"computation_{hash(str(params))}"
        result = cache.get(key)
        if result is None:
            result = perform_computation(params)
            cache.put(key, result, ttl=3600)
        return result

    assert expensive_function({"a": 1, "b": 2}) == 3
    assert expensive_function({"a": 1, "b": 2}) == 3
    assert len(calls) == 1
    data = np.arange(5)
    cache.put("user_data_123", data, tags=["user_123", "recent"])
    assert cache.invalidate_by_tags(["user_123"]) == 1
    assert cache.get("user_data_123") is None
    stats = cache.get_stats()
    assert f"Hit rate: {stats.hit_rate:.2%}" == "Hit rate: 33.33%"
    cache.close()


def test_get_returns_default_for_missing_keys() -> None:
    """A miss returns ``default`` (None unless given), and a cached None is a hit."""
    with CacheManager() as cache:
        assert cache.get("nope") is None
        assert cache.get("nope", "fallback") == "fallback"
        cache.put("none", None)
        assert cache.get("none", "fallback") is None
        assert cache.get_stats().hits == 1


def test_memory_tier_returns_the_same_object() -> None:
    """The memory tier holds values by reference: no copy on put or get."""
    arr = np.ones(10)
    with CacheManager() as cache:
        cache.put("a", arr)
        assert cache.get("a") is arr


def test_delete_contains_and_clear() -> None:
    """delete removes one key and says whether it was there; clear removes all."""
    with CacheManager() as cache:
        cache.put("a", 1)
        cache.put("b", 2)
        assert "a" in cache
        assert cache.delete("a") is True
        assert cache.delete("a") is False
        assert "a" not in cache
        cache.clear()
        assert "b" not in cache
        assert cache.get_stats().entries == 0


def test_put_replaces_and_keeps_byte_count_exact() -> None:
    """Replacing a key frees the old value's bytes."""
    with CacheManager(max_size_mb=64) as cache:
        cache.put("a", np.zeros(1_000_000))
        cache.put("a", np.zeros(10))
        assert cache.get_stats().bytes < 1000
        assert cache.get_stats().entries == 1


def test_a_view_costs_its_whole_buffer() -> None:
    """A small view of a big array is counted as the buffer it keeps alive."""
    big = np.zeros(2_000_000)  # 16 MB
    with CacheManager(max_size_mb=64) as cache:
        cache.put("view", big[:10])
        assert cache.get_stats().bytes >= big.nbytes


def test_ttl_expires_entries_and_counts_them() -> None:
    """An entry past its TTL is a miss and counted as an expiration."""
    with CacheManager() as cache:
        cache.put("short", 1, ttl=0.05)
        cache.put("long", 2, ttl=60)
        assert cache.get("short") == 1
        time.sleep(0.1)
        assert cache.get("short") is None
        assert cache.get("long") == 2
        stats = cache.get_stats()
        assert stats.expirations == 1
        assert (stats.hits, stats.misses) == (2, 1)


def test_default_ttl_applies_when_put_gives_none() -> None:
    """default_ttl is the lifetime of entries put without a ttl."""
    with CacheManager(default_ttl=0.05) as cache:
        cache.put("a", 1)
        cache.put("b", 2, ttl=60)
        time.sleep(0.1)
        assert cache.expire() == 1
        assert cache.get("a") is None
        assert cache.get("b") == 2


def test_too_large_value_is_rejected_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A value above the byte limit is not cached, is counted, and logged once: no warning."""
    with CacheManager(max_size_mb=1) as cache, caplog.at_level(logging.WARNING):
        cache.put("big", np.zeros(200_000))  # no Python warning (filterwarnings=error)
        cache.put("big2", np.zeros(300_000))
        [record] = caplog.records
        assert record.name == "lensing_ssc.processing.managers.cache"
        assert "exceeds the memory tier's limit of 1.0 MiB" in record.getMessage()
        assert cache.get("big") is None
        stats = cache.get_stats()
        assert stats.rejected == 2
        assert stats.memory.rejected == 2
        assert stats.entries == 0


def test_rejected_replacement_drops_the_old_value() -> None:
    """Putting a too-large value under a cached key does not leave the stale value."""
    with CacheManager(max_size_mb=1) as cache:
        cache.put("k", 1)
        cache.put("k", np.zeros(200_000))
        assert cache.get("k") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size_mb": -1}, r"greater than 0 \(use a number greater than 0\)$"),
        ({"max_size_mb": 0}, r"greater than 0 \(use a number greater than 0\)$"),
        ({"max_size_mb": float("inf")}, r"finite number \(use a number greater than 0\)$"),
        ({"max_entries": -5}, r"\(use a whole number greater than 0\)$"),
        ({"max_entries": 2.5}, r"valid integer \(use a whole number greater than 0\)$"),
        ({"default_ttl": -1.0}, r"\(use a number greater than 0, or null for the default\)$"),
        ({"disk_max_size_mb": -3}, r"\(use a number greater than 0\)$"),
        ({"disk_min_free_mb": -1}, r"\(use a number at least 0, or null for the default\)$"),
        ({"disk_min_free_mb": float("inf")}, r"should be a finite number \(use a number at"),
        ({"disk_min_free_mb": "1G"}, r"should be a valid number \(use a number at least 0"),
        ({"disk_min_free_mb": True}, r"should be a number, not true or false"),
        ({"eviction_policy": "random"}, r"Input should be 'lru', 'lfu' or 'fifo'$"),
        ({"compression": "brotli"}, r"Input should be 'auto', 'none', 'gzip', 'zstd' or 'lz4'$"),
        ({"memory_map": "yes"}, r"Input should be true, false or 'verify'$"),
        ({"lease_ttl": 0}, r"\(use a number greater than 0\)$"),
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict, message: str) -> None:
    """A bad setting raises ConfigError naming the field, the value and the allowed range."""
    ((name, value),) = kwargs.items()
    with pytest.raises(ConfigError, match=message) as info:
        CacheManager(**kwargs)
    assert str(info.value).startswith(f"invalid value {value!r} for 'cache.{name}': ")
    assert (info.value.field, info.value.value) == (f"cache.{name}", value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, r"use a number at least 0, or null for the default\)"),
        (-0.5, "greater than or equal to 0"),
        ("lots", "valid number"),
        (True, "not true or false"),
        (float("inf"), "finite number"),
    ],
)
def test_a_bad_reserve_in_a_config_names_field_and_value(value: object, message: str) -> None:
    """A config whose cache.disk_min_free_mb is negative or not a number is refused."""
    with pytest.raises(ConfigError, match=message) as info:
        ProcessingConfig(cache={"disk_min_free_mb": value})
    assert (info.value.field, info.value.value) == ("cache.disk_min_free_mb", value)


def test_the_disk_reserve_comes_from_the_config_unless_given() -> None:
    """cache.disk_min_free_mb reaches the manager; an explicit argument wins; None is auto."""
    config = ProcessingConfig.from_env({"LENSING_SSC_CACHE__DISK_MIN_FREE_MB": "2048"})
    assert config.cache.disk_min_free_mb == 2048
    with CacheManager(config=config) as cache:
        assert cache.get_status()["disk_min_free_mb"] == 2048
    with CacheManager(config=config, disk_min_free_mb=0) as cache:
        assert cache.get_status()["disk_min_free_mb"] == 0
    with CacheManager() as cache:
        assert cache.get_status()["disk_min_free_mb"] is None


@pytest.mark.parametrize("ttl", [-1, 0, "soon", True])
def test_bad_ttl_on_put_raises_cache_error(ttl: object) -> None:
    """A ttl that is not a positive number of seconds is refused, naming it."""
    with CacheManager() as cache, pytest.raises(CacheError, match="ttl must be a positive") as info:
        cache.put("a", 1, ttl=ttl)  # type: ignore[arg-type]
    assert info.value.value == ttl


def test_bad_tags_and_keys_raise_cache_error() -> None:
    """A bare string as tags, non-string tags and unhashable keys are refused clearly."""
    with CacheManager() as cache:
        with pytest.raises(CacheError, match=r"write tags=\['maps'\]"):
            cache.put("a", 1, tags="maps")
        with pytest.raises(CacheError, match="tags must be strings, got 3"):
            cache.put("a", 1, tags=[3])  # type: ignore[list-item]
        with pytest.raises(CacheError, match="cache keys must be hashable, got a list"):
            cache.put(["a"], 1)  # type: ignore[arg-type]
        with pytest.raises(CacheError, match="cache keys must be hashable, got a dict"):
            cache.get({"a": 1})  # type: ignore[arg-type]


def test_invalidate_by_tags_removes_every_carrier() -> None:
    """Entries carrying any of the tags go; others stay; the count is returned."""
    with CacheManager() as cache:
        cache.put("a", 1, tags=["x", "y"])
        cache.put("b", 2, tags=["y"])
        cache.put("c", 3, tags=["z"])
        cache.put("d", 4)
        assert cache.invalidate_by_tags(["y"]) == 2
        assert [cache.get(k) for k in "abcd"] == [None, None, 3, 4]
        assert cache.invalidate_by_tags(["x", "z", "unknown"]) == 1
        assert cache.invalidate_by_tags([]) == 0


def test_invalidate_100k_entries_by_tag_within_a_second() -> None:
    """Invalidating a tag on 100 000 memory entries takes at most a second."""
    with CacheManager(max_entries=200_000, max_size_mb=1024) as cache:
        for i in range(100_000):
            cache.put(i, i, tags=("batch",))
        cache.put("other", 1, tags=("keep",))
        start = time.perf_counter()
        removed = cache.invalidate_by_tags(["batch"])
        elapsed = time.perf_counter() - start
        assert removed == 100_000
        assert cache.get("other") == 1
        assert elapsed <= 1.0


def test_shrink_frees_memory_down_to_the_target() -> None:
    """shrink(target_bytes) and shrink(fraction=...) evict by policy and report bytes freed."""
    with CacheManager(max_size_mb=64) as cache:
        for i in range(10):
            cache.put(i, np.zeros(100_000))  # 800 kB each
        held = cache.get_stats().bytes
        freed = cache.shrink(fraction=0.5)
        assert cache.get_stats().bytes <= held // 2
        assert freed == held - cache.get_stats().bytes
        assert cache.get(0) is None
        assert cache.get(9) is not None  # oldest went first
        cache.shrink(0)
        assert cache.get_stats().entries == 0
        assert cache.get_stats().evictions == 10


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((100,), {"fraction": 0.5}, "not both"),
        ((), {"fraction": 1.5}, "fraction must be between 0 and 1, got 1.5"),
        ((-1,), {}, "target_bytes must be a non-negative integer, got -1"),
    ],
)
def test_shrink_rejects_bad_targets(args: tuple, kwargs: dict, message: str) -> None:
    """shrink names a bad target instead of guessing."""
    with CacheManager() as cache, pytest.raises(CacheError, match=message):
        cache.shrink(*args, **kwargs)


def test_stats_are_frozen_and_status_is_json_ready(tmp_path: Path) -> None:
    """get_stats is a frozen dataclass per tier; get_status serialises to JSON."""
    with CacheManager(cache_dir=tmp_path / "c") as cache:
        cache.put("a", 1)
        cache.get("a")
        cache.get("b")
        stats = cache.get_stats()
        assert isinstance(stats, CacheStats)
        assert isinstance(stats.memory, TierStats)
        assert isinstance(stats.disk, TierStats)
        with pytest.raises(AttributeError):
            stats.hits = 5  # type: ignore[misc]
        status = cache.get_status()
        decoded = json.loads(json.dumps(status))
        assert decoded["hits"] == 1
        assert decoded["misses"] == 1
        assert decoded["disk"]["entries"] == 1
        assert decoded["cache_dir"] == str(tmp_path / "c")
        assert decoded["eviction_policy"] == "lru"
        assert decoded["closed"] is False


def test_config_supplies_settings_and_arguments_override(tmp_path: Path) -> None:
    """A ProcessingConfig's cache section is used; explicit arguments win."""
    config = ProcessingConfig(
        run_dir=tmp_path / "run",
        cache={"max_size_mb": 8, "max_entries": 3, "eviction_policy": "fifo", "default_ttl": 60},
    )
    with CacheManager(config=config) as cache:
        status = cache.get_status()
        assert status["max_size_mb"] == 8
        assert status["max_entries"] == 3
        assert status["eviction_policy"] == "fifo"
        assert status["default_ttl"] == 60
        assert cache.cache_dir == tmp_path / "run" / "cache"
        assert (tmp_path / "run" / "cache" / "index.sqlite").is_file()
    with CacheManager(max_entries=7, eviction_policy="lfu", cache_dir=None, config=config) as cache:
        status = cache.get_status()
        assert status["max_entries"] == 7
        assert status["eviction_policy"] == "lfu"
        assert cache.cache_dir is None


def test_memory_map_and_lease_ttl_come_from_the_config_unless_given(tmp_path: Path) -> None:
    """cache.memory_map and cache.lease_ttl are settings: argument, else config, else default."""
    config = ProcessingConfig(run_dir=tmp_path, cache={"memory_map": "verify", "lease_ttl": 5})
    with CacheManager(cache_dir=None, config=config) as cache:
        assert (cache.get_status()["memory_map"], cache.get_status()["lease_ttl"]) == ("verify", 5)
    with CacheManager(cache_dir=None, lease_ttl=7, memory_map=False, config=config) as cache:
        assert (cache.get_status()["memory_map"], cache.get_status()["lease_ttl"]) == (False, 7)
    with CacheManager() as cache:
        assert (cache.get_status()["memory_map"], cache.get_status()["lease_ttl"]) == (False, 60)


def test_an_explicit_none_cache_dir_is_memory_only_but_a_missing_one_is_the_configs(
    tmp_path: Path,
) -> None:
    """cache_dir=None means memory only; cache_dir left out takes config.cache_dir."""
    config = ProcessingConfig(run_dir=tmp_path)
    with CacheManager(config=config) as cache:
        assert cache.get_status()["cache_dir"] == str(tmp_path / "cache")
    with CacheManager(cache_dir=None, config=config) as cache:
        assert cache.get_status()["cache_dir"] is None


def test_config_with_disk_off_means_memory_only(tmp_path: Path) -> None:
    """cache.disk = false in the config gives a memory-only cache."""
    config = ProcessingConfig(run_dir=tmp_path / "run", cache={"disk": False})
    with CacheManager(config=config) as cache:
        assert cache.cache_dir is None
        assert cache.get_stats().disk is None
    assert not (tmp_path / "run").exists()


def test_close_is_idempotent_and_closed_cache_refuses_use() -> None:
    """close() twice is fine; afterwards every operation raises CacheError."""
    cache = CacheManager()
    cache.put("a", 1)
    cache.close()
    cache.close()
    for call in (lambda: cache.get("a"), lambda: cache.put("b", 2), lambda: "a" in cache):
        with pytest.raises(CacheError, match="the cache is closed"):
            call()
    assert cache.get_status()["closed"] is True


def test_pickled_manager_reopens_the_same_directory(tmp_path: Path) -> None:
    """A manager sent to a worker process is rebuilt on the same cache directory."""
    with CacheManager(max_entries=9, lease_ttl=8, cache_dir=tmp_path / "c") as cache:
        cache.put("shared", [1, 2])
        clone = pickle.loads(pickle.dumps(cache))
        with clone:
            assert (clone.get_status()["max_entries"], clone.get_status()["lease_ttl"]) == (9, 8)
            assert clone.get("shared") == [1, 2]
            assert clone.get_stats().disk.hits == 1  # type: ignore[union-attr]


def test_repr_names_policy_and_location(tmp_path: Path) -> None:
    """repr says the policy and where the tiers are."""
    with CacheManager(eviction_policy="lfu") as cache:
        assert repr(cache) == "<CacheManager lfu memory>"
    assert "closed" in repr(cache)


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("eviction_policy", "fifo", "cache.eviction_policy"),
        ("default_ttl", 5.0, "cache.default_ttl"),
        ("cache_dir", Path("elsewhere"), "cache.dir"),
    ],
)
def test_assigning_a_setting_after_construction_is_refused(
    tmp_path: Path, name: str, value: object, field: str
) -> None:
    """Assigning a setting raises ConfigError naming it and the constructor; it keeps its value."""
    with CacheManager(cache_dir=tmp_path / "cache", eviction_policy="lru") as cache:
        before = getattr(cache, name)
        with pytest.raises(ConfigError) as caught:
            setattr(cache, name, value)
        assert getattr(cache, name) == before
    assert str(caught.value).startswith(
        f"CacheManager.{name} is read-only after construction: assigning it would change "
        "nothing the manager already built"
    )
    assert f"pass {name}=... to CacheManager(...)" in str(caught.value)
    assert (caught.value.field, caught.value.value) == (field, value)
