"""The memory tier: eviction order of each policy, O(1) puts, thread safety, the LFU index."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from lensing_ssc.processing.managers import CacheManager
from lensing_ssc.processing.managers.cache._policies import FrequencyIndex


def _survivors(cache: CacheManager, keys: list[str]) -> list[str]:
    return [key for key in keys if key in cache]


def test_lru_evicts_the_least_recently_used() -> None:
    """lru: a get refreshes a key, so the untouched oldest key goes first."""
    with CacheManager(max_entries=3, eviction_policy="lru") as cache:
        for key in "abc":
            cache.put(key, key)
        cache.get("a")
        cache.put("d", "d")
        assert _survivors(cache, list("abcd")) == ["a", "c", "d"]
        assert cache.get_stats().evictions == 1


def test_fifo_evicts_in_insertion_order_whatever_is_read() -> None:
    """fifo: reads do not matter; the first key in is the first out."""
    with CacheManager(max_entries=3, eviction_policy="fifo") as cache:
        for key in "abc":
            cache.put(key, key)
        for _ in range(5):
            cache.get("a")
        cache.put("d", "d")
        assert _survivors(cache, list("abcd")) == ["b", "c", "d"]


def test_lfu_evicts_the_least_frequently_used_oldest_first() -> None:
    """lfu: the key with the fewest uses goes; ties go to the earliest arrival."""
    with CacheManager(max_entries=3, eviction_policy="lfu") as cache:
        for key in "abc":
            cache.put(key, key)
        cache.get("a")
        cache.get("a")
        cache.get("c")
        cache.put("d", "d")  # b has one use, the fewest
        assert _survivors(cache, list("abcd")) == ["a", "c", "d"]
        cache.put("e", "e")  # d (1 use) goes before c (2 uses)
        assert _survivors(cache, list("abcde")) == ["a", "c", "e"]


def test_lfu_hits_are_counted_under_the_lock() -> None:
    """lfu hits take the locked path and still count as hits."""
    with CacheManager(eviction_policy="lfu") as cache:
        cache.put("a", 1)
        assert [cache.get("a") for _ in range(4)] == [1, 1, 1, 1]
        assert cache.get_stats().hits == 4


def test_byte_limit_evicts_by_policy() -> None:
    """The byte limit evicts as many old entries as the new value needs."""
    with CacheManager(max_size_mb=1, max_entries=100) as cache:
        for i in range(4):
            cache.put(i, bytes(300_000))
        assert _survivors(cache, [0, 1, 2, 3]) == [1, 2, 3]  # type: ignore[arg-type]
        assert cache.get_stats().bytes <= 1024 * 1024


def test_expired_entries_go_before_live_ones() -> None:
    """When room is needed, expired entries are purged before evicting live ones."""
    with CacheManager(max_entries=3) as cache:
        cache.put("old", 1)
        cache.put("brief", 2, ttl=0.02)
        cache.put("other", 3)
        time.sleep(0.05)
        cache.put("new", 4)
        assert _survivors(cache, ["old", "brief", "other", "new"]) == ["old", "other", "new"]
        stats = cache.get_stats()
        assert (stats.evictions, stats.expirations) == (0, 1)


@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
def test_put_with_eviction_is_constant_time(policy: str) -> None:
    """A put that evicts costs the same in a full cache of 50 000 as in one of 500."""

    def per_put(capacity: int) -> float:
        with CacheManager(max_entries=capacity, max_size_mb=4096, eviction_policy=policy) as c:
            for i in range(capacity):
                c.put(i, i)
            keys = range(capacity, capacity + 10_000)
            start = time.perf_counter()
            for key in keys:
                c.put(key, key)
            elapsed = time.perf_counter() - start
            assert c.get_stats().evictions == 10_000
            return elapsed / 10_000

    small = min(per_put(500) for _ in range(2))
    large = min(per_put(50_000) for _ in range(2))
    assert large < 3 * small  # a scan over the entries would be ~100x


@pytest.fixture
def _frequent_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond so races show up in a short test."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("_frequent_thread_switches")
@pytest.mark.parametrize("policy", ["lru", "lfu", "fifo"])
def test_threads_hammering_one_cache_keep_it_consistent(policy: str) -> None:
    """Eight threads putting, getting and deleting: exact counts, limits and byte totals hold."""
    cache = CacheManager(max_entries=50, eviction_policy=policy)
    gets = [0] * 8
    errors: list[BaseException] = []

    def work(index: int) -> None:
        rng = random.Random(index)
        try:
            for _ in range(3000):
                key = rng.randrange(100)
                action = rng.random()
                if action < 0.5:
                    cache.get(key)
                    gets[index] += 1
                elif action < 0.9:
                    cache.put(key, key, ttl=0.01 if rng.random() < 0.1 else None)
                else:
                    cache.delete(key)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stats = cache.get_stats()
    assert stats.hits + stats.misses == sum(gets)
    memory = cache._memory
    assert len(memory.values) == len(memory._meta) <= 50
    assert memory.bytes == sum(meta.size for meta in memory._meta.values())
    assert set(memory.expiry) <= set(memory.values)
    for key in list(memory.values):
        assert cache.get(key) in (key, None)
    cache.close()


def test_frequency_index_orders_by_count_then_arrival() -> None:
    """FrequencyIndex: victim is the lowest count, earliest arrival; counts follow touches."""
    index = FrequencyIndex()
    for key in "abc":
        index.add(key)
    index.touch("a")
    index.touch("b")
    index.touch("a")
    assert (index.count("a"), index.count("b"), index.count("c")) == (3, 2, 1)
    assert index.victim() == "c"
    index.remove("c")
    assert index.victim() == "b"
    index.add("a")  # re-adding starts afresh
    assert index.count("a") == 1
    assert index.victim() == "a"
    assert len(index) == 2
    assert "b" in index
    index.clear()
    with pytest.raises(KeyError, match="empty"):
        index.victim()
