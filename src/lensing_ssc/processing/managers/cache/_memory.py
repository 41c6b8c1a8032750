"""The memory tier: values held by reference, bounded by entries and bytes, O(1) per call.

Values live in one ``OrderedDict`` (``values``) whose order is the eviction order for
``lru`` and ``fifo``; ``lfu`` adds a :class:`~._policies.FrequencyIndex`. Sizes come from
:func:`lensing_ssc.core.io.estimate_size`, computed by the caller. Deadlines of entries with
a time-to-live sit in ``expiry`` (checked on access) and in a heap, so expired entries are
purged in deadline order before anything alive is evicted. Tags map to key sets, so
invalidating a tag costs one dict pop per entry.

Thread safety: every mutation happens under ``lock``. For ``lru`` and ``fifo`` the hit
path may run without the lock (``lock_free_hits``), because each step it takes is a single
C-level operation that is atomic while the interpreter holds the GIL: ``values.get``,
``OrderedDict.move_to_end`` and ``next`` on the ``HitCounter``. For that, mutations keep one
order: a deadline is set before its value is stored and dropped after its value is
removed, so a lock-free reader never sees a value without the deadline it was stored with.
The manager runs that hit path itself (``CacheManager.get``); :meth:`MemoryTier.lookup` is
the locked path every other case takes.

Writing through to disk and promotion from disk are the manager's business.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

from ._policies import EvictionPolicy, FrequencyIndex
from ._stats import HitCounter, TierStats

__all__ = ["MISSING", "MemoryTier"]

MISSING: Any = object()
"""Returned by lookups that find nothing (``None`` is a value like any other)."""

_monotonic = time.monotonic
_FORK_WAIT = 2.0  # seconds a fork waits for the lock; the longest locked step (invalidating
# 100 000 entries) takes 0.04-0.3 s


class _Meta:
    __slots__ = ("size", "tags")

    def __init__(self, size: int, tags: tuple[str, ...]) -> None:
        self.size = size
        self.tags = tags


class MemoryTier:
    """Bounded in-memory store with ``lru``, ``lfu`` or ``fifo`` eviction.

    Args:
        max_bytes: Most bytes held; a value larger than this alone is rejected.
        max_entries: Most entries held.
        policy: ``"lru"``, ``"lfu"`` or ``"fifo"``.
        lock_free_hits: Let the manager serve ``lru``/``fifo`` hits without the lock
            (only where the GIL makes its single C calls atomic).
    """

    def __init__(
        self, *, max_bytes: int, max_entries: int, policy: EvictionPolicy, lock_free_hits: bool
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.policy = policy
        self.lock = threading.Lock()
        self.values: OrderedDict[Hashable, Any] = OrderedDict()
        self.expiry: dict[Hashable, float] = {}
        self.touch = self.values.move_to_end if policy == "lru" else None
        self.hits = HitCounter()
        self.lock_free_hits = lock_free_hits and policy != "lfu"
        self.epoch = 0  # bumped by every mutation; promotions from disk check it
        self.bytes = 0
        self.misses = self.evictions = self.expirations = self.rejected = 0
        self._meta: dict[Hashable, _Meta] = {}
        self._by_tag: dict[str, set[Hashable]] = {}
        self._deadlines: list[tuple[float, int, Hashable]] = []
        self._order = itertools.count()
        self._lfu = FrequencyIndex() if policy == "lfu" else None
        self._fork_held = False

    def __len__(self) -> int:
        return len(self.values)

    # -- forks (:mod:`._fork`) ----------------------------------------------------------
    def before_fork(self) -> None:
        """Take the lock, so that a child forked now gets a whole copy of the tier."""
        self._fork_held = self.lock.acquire(timeout=_FORK_WAIT)

    def after_fork(self, *, in_child: bool) -> None:
        """Release the lock taken by :meth:`before_fork`.

        In a child, a lock that could not be taken (held past the wait by a thread the
        child does not have) is replaced, and the entries, which that thread may have been
        changing, are dropped.
        """
        held, self._fork_held = self._fork_held, False
        if held:
            self.lock.release()
        elif in_child:
            self.lock = threading.Lock()
            self.clear()

    # -- reading ------------------------------------------------------------------------
    def lookup(self, key: Hashable) -> Any:
        """Return the live value of ``key`` or :data:`MISSING`, counting the outcome."""
        with self.lock:
            value = self.values.get(key, MISSING)
            if value is MISSING:
                self.misses += 1
                return MISSING
            deadline = self.expiry.get(key)
            if deadline is not None and deadline <= _monotonic():
                self._remove(key)
                self.expirations += 1
                self.misses += 1
                return MISSING
            if self._lfu is not None:
                self._lfu.touch(key)
            elif self.touch is not None:
                self.touch(key)
            next(self.hits.counter)
            return value

    def peek(self, key: Hashable) -> Any:
        """The live value of ``key`` or :data:`MISSING`, without counting or reordering."""
        with self.lock:
            value = self.values.get(key, MISSING)
            deadline = self.expiry.get(key)
            if deadline is not None and deadline <= _monotonic():
                return MISSING
            return value

    def contains(self, key: Hashable) -> bool:
        """Whether ``key`` holds a live value, without counting or reordering."""
        with self.lock:
            if key not in self.values:
                return False
            deadline = self.expiry.get(key)
            return deadline is None or deadline > _monotonic()

    # -- writing ------------------------------------------------------------------------
    def store(
        self,
        key: Hashable,
        value: Any,
        *,
        size: int,
        ttl: float | None,
        tags: tuple[str, ...],
    ) -> bool:
        """Store ``value`` under ``key``, evicting as needed; ``False`` if it is too large.

        Storing a key that is present replaces it as a new entry (its use count and place
        in the order start afresh). A rejected value also drops the key's old value, which
        it was meant to replace.
        """
        with self.lock:
            self.epoch += 1
            if key in self._meta:
                self._remove(key)
            if size > self.max_bytes:
                self.rejected += 1
                return False
            self._store(key, value, size, ttl, tags)
            return True

    def promote(
        self,
        key: Hashable,
        value: Any,
        *,
        size: int,
        ttl: float | None,
        tags: tuple[str, ...],
        epoch: int,
    ) -> bool:
        """Store a value read from disk, unless the tier changed since ``epoch`` was read."""
        with self.lock:
            if epoch != self.epoch or key in self._meta or size > self.max_bytes:
                return False
            if ttl is not None and ttl <= 0:
                return False
            self._store(key, value, size, ttl, tags)
            return True

    def _store(
        self, key: Hashable, value: Any, size: int, ttl: float | None, tags: tuple[str, ...]
    ) -> None:
        """Make room for ``size`` bytes and hold the entry, with its deadline (lock held)."""
        self._make_room(size)
        if ttl is not None:
            deadline = _monotonic() + ttl
            self.expiry[key] = deadline
            heapq.heappush(self._deadlines, (deadline, next(self._order), key))
        self._insert(key, value, _Meta(size, tags))

    def discard(self, key: Hashable) -> bool:
        """Remove ``key``; whether it was present."""
        with self.lock:
            self.epoch += 1
            if key not in self._meta:
                return False
            self._remove(key)
            return True

    def invalidate(self, tags: Iterable[str]) -> set[Hashable]:
        """Remove every entry carrying any of ``tags``; the keys removed."""
        with self.lock:
            self.epoch += 1
            doomed: set[Hashable] = set()
            for tag in tags:
                doomed.update(self._by_tag.pop(tag, ()))
            for key in doomed:
                self._remove(key)
            return doomed

    def clear(self) -> int:
        """Remove every entry; the number removed."""
        with self.lock:
            self.epoch += 1
            removed = len(self.values)
            self.values.clear()
            self.expiry.clear()
            self._meta.clear()
            self._by_tag.clear()
            self._deadlines.clear()
            if self._lfu is not None:
                self._lfu.clear()
            self.bytes = 0
            return removed

    def shrink(self, target_bytes: int) -> int:
        """Evict by policy until at most ``target_bytes`` are held; the bytes freed."""
        with self.lock:
            self.epoch += 1
            before = self.bytes
            self._purge_expired(_monotonic())
            while self.values and self.bytes > target_bytes:
                self._evict_one()
            return before - self.bytes

    def purge_expired(self) -> int:
        """Remove every entry whose time-to-live has passed; the number removed."""
        with self.lock:
            return self._purge_expired(_monotonic())

    def stats(self) -> TierStats:
        """Counters and occupancy now."""
        with self.lock:
            self._purge_expired(_monotonic())
            return TierStats.build(
                "memory",
                self.hits.value(),
                self.misses,
                evictions=self.evictions,
                expirations=self.expirations,
                rejected=self.rejected,
                bytes=self.bytes,
                entries=len(self.values),
                max_bytes=self.max_bytes,
                max_entries=self.max_entries,
            )

    def count_miss(self) -> None:
        """Count a lookup that the lock-free path could not serve and found nothing."""
        with self.lock:
            self.misses += 1

    # -- internals (lock held) ----------------------------------------------------------
    def _insert(self, key: Hashable, value: Any, meta: _Meta) -> None:
        self._meta[key] = meta
        for tag in meta.tags:
            keys = self._by_tag.get(tag)
            if keys is None:
                self._by_tag[tag] = {key}
            else:
                keys.add(key)
        if self._lfu is not None:
            self._lfu.add(key)
        self.bytes += meta.size
        self.values[key] = value  # last: a lock-free reader sees a complete entry

    def _remove(self, key: Hashable) -> _Meta:
        del self.values[key]  # first: a lock-free reader stops seeing it at once
        return self._forget(key)

    def _forget(self, key: Hashable) -> _Meta:
        """Drop the bookkeeping of ``key``, whose value is already gone."""
        self.expiry.pop(key, None)
        meta = self._meta.pop(key)
        for tag in meta.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]
        if self._lfu is not None:
            self._lfu.remove(key)
        self.bytes -= meta.size
        return meta

    def _evict_one(self) -> None:
        if self._lfu is not None:
            self._remove(self._lfu.victim())
        else:
            # One C call: iterating to the first key could be interrupted by a lock-free
            # reader's move_to_end, which invalidates the iterator.
            key, _ = self.values.popitem(last=False)
            self._forget(key)
        self.evictions += 1

    def _make_room(self, size: int) -> None:
        if self._deadlines and (
            len(self.values) >= self.max_entries or self.bytes + size > self.max_bytes
        ):
            self._purge_expired(_monotonic())
        while self.values and (
            len(self.values) >= self.max_entries or self.bytes + size > self.max_bytes
        ):
            self._evict_one()

    def _purge_expired(self, now: float) -> int:
        heap = self._deadlines
        purged = 0
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self.expiry.get(key) == deadline:
                self._remove(key)
                self.expirations += 1
                purged += 1
        if len(heap) > 2 * len(self.expiry) + 1024:  # drop entries of replaced keys
            self._deadlines = [item for item in heap if self.expiry.get(item[2]) == item[0]]
            heapq.heapify(self._deadlines)
        return purged
