"""Eviction policies: their names and the O(1) frequency index behind ``lfu``.

``lru`` and ``fifo`` need no structure of their own: the memory tier keeps its entries in
an ``OrderedDict`` whose order *is* the policy (``lru`` moves an entry to the end on every
hit, ``fifo`` never does), so the victim is always the first entry. ``lfu`` needs counts:
:class:`FrequencyIndex` keeps keys in buckets of equal use count, the buckets in a doubly
linked list in increasing count, so touching, adding, removing and choosing a victim are
all O(1) (the scheme of Shah, Mitra and Matani, "An O(1) algorithm for implementing the
LFU cache eviction scheme", 2010). Ties go to the key that entered its bucket first, i.e.
the least recently used among the least frequently used.

The disk tier orders victims in SQL instead (:mod:`._index`). Which names a setting may
take is checked by the config's ``cache`` section, not here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Literal

__all__ = ["EvictionPolicy", "FrequencyIndex"]

EvictionPolicy = Literal["lru", "lfu", "fifo"]


class _Bucket:
    """The keys used exactly ``count`` times, oldest arrival first."""

    __slots__ = ("count", "keys", "next", "prev")

    def __init__(self, count: int) -> None:
        self.count = count
        self.keys: OrderedDict[Hashable, None] = OrderedDict()
        self.prev: _Bucket = self
        self.next: _Bucket = self


class FrequencyIndex:
    """Use counts of keys with O(1) add, touch, remove and least-frequently-used victim.

    Example:
        >>> index = FrequencyIndex()
        >>> index.add("a"); index.add("b"); index.touch("a")
        >>> index.victim()
        'b'
    """

    __slots__ = ("_bucket_of", "_head")

    def __init__(self) -> None:
        self._head = _Bucket(0)  # sentinel of the circular list; never holds keys
        self._bucket_of: dict[Hashable, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._bucket_of)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._bucket_of

    def count(self, key: Hashable) -> int:
        """How many times ``key`` was added or touched since it was last added."""
        return self._bucket_of[key].count

    def _after(self, bucket: _Bucket, count: int) -> _Bucket:
        """The bucket for ``count`` right after ``bucket``, created if missing."""
        following = bucket.next
        if following.count == count:
            return following
        fresh = _Bucket(count)
        fresh.prev, fresh.next = bucket, following
        bucket.next = following.prev = fresh
        return fresh

    @staticmethod
    def _unlink_if_empty(bucket: _Bucket) -> None:
        if not bucket.keys:
            bucket.prev.next = bucket.next
            bucket.next.prev = bucket.prev

    def add(self, key: Hashable) -> None:
        """Start counting ``key`` at one use; a key already present is reset to one."""
        if key in self._bucket_of:
            self.remove(key)
        bucket = self._after(self._head, 1)
        bucket.keys[key] = None
        self._bucket_of[key] = bucket

    def touch(self, key: Hashable) -> None:
        """Count one more use of ``key``."""
        bucket = self._bucket_of[key]
        target = self._after(bucket, bucket.count + 1)
        del bucket.keys[key]
        target.keys[key] = None
        self._bucket_of[key] = target
        self._unlink_if_empty(bucket)

    def remove(self, key: Hashable) -> None:
        """Stop counting ``key``; ``KeyError`` if it is not counted."""
        bucket = self._bucket_of.pop(key)
        del bucket.keys[key]
        self._unlink_if_empty(bucket)

    def victim(self) -> Hashable:
        """The least frequently used key (the earliest arrival among ties)."""
        first = self._head.next
        if first is self._head:
            raise KeyError("the frequency index is empty")
        return next(iter(first.keys))

    def clear(self) -> None:
        """Forget every key."""
        self._head.next = self._head.prev = self._head
        self._bucket_of.clear()
