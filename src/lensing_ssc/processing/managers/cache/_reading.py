"""The read path of a ``CacheManager``: ``get``, ``in``, and promotion from disk to memory.

A memory hit costs about one dict lookup: for ``lru`` and ``fifo`` it takes no lock,
because it consists of single C-level dict operations that the GIL makes atomic (on a
free-threaded Python it takes the memory tier's lock). A memory miss asks the disk tier,
and what it finds is promoted to memory, with the time it has left to live and its tags,
except arrays returned memory-mapped (``memory_map=True`` or ``"verify"``): they already
live in the page cache. Expired entries are misses.

Writing, invalidating and evicting are in :mod:`._writing`; the tiers and what a damaged
disk index costs a read in :mod:`._tiers`; the counters a read advances in :mod:`._memory`
and :mod:`._disk`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from lensing_ssc.core.io import estimate_size

from ._disk import DiskTier
from ._keys import encode_key
from ._memory import MISSING
from ._tiers import TieredCache

__all__ = ["CacheReads"]

_NOTHING: dict[Hashable, Any] = {}  # never written: lookups in it always miss


class CacheReads(TieredCache):
    """The reading methods of :class:`~._manager.CacheManager`, over its two tiers."""

    # The hit path's own references into the memory tier (see _bind_hit_path).
    _lookup: Callable[[Hashable, Any], Any]
    _expiry: dict[Hashable, float]
    _touch: Callable[[Hashable], None] | None
    _hits: itertools.count[int]

    def _bind_hit_path(self) -> None:
        """Keep what :meth:`get` reads on a hit as attributes of the cache itself."""
        # The hit path reads these directly: one attribute load each, no method layers.
        # Where hits must take the lock, it looks in an empty dict and so always falls
        # through to the locked path (still raising TypeError for unhashable keys).
        self._lookup = self._memory.values.get
        if not self._memory.lock_free_hits:
            self._lookup = _NOTHING.get
        self._expiry = self._memory.expiry
        self._touch = self._memory.touch
        self._hits = self._memory.hits.counter

    def get(self, key: Hashable, default: Any = None) -> Any:
        """Return the value cached under ``key``, or ``default``.

        A memory hit costs about one dict lookup; a memory miss asks the disk tier and
        promotes what it finds. Expired entries are misses.

        Raises:
            CacheError: ``key`` is unhashable, cannot be encoded for the disk tier, or
                the cache is closed.
        """
        try:
            value = self._lookup(key, MISSING)
        except TypeError as exc:
            raise self._unhashable(key) from exc
        if value is not MISSING and (not self._expiry or key not in self._expiry):
            touch = self._touch
            if touch is not None:
                try:  # noqa: SIM105 - contextlib.suppress would double the cost of a hit
                    touch(key)
                except KeyError:
                    pass  # evicted by another thread since the lookup: still a hit
            next(self._hits)
            return value
        return self._get_slow(key, default)

    def _get_slow(self, key: Hashable, default: Any) -> Any:
        self._check_open()
        value = self._memory.lookup(key)
        if value is not MISSING:
            return value
        disk = self._disk
        found = default
        if disk is not None:
            with self._unless_damaged:
                found = self._from_disk(disk, key, default, count=True)
        return found

    def _from_disk(self, disk: DiskTier, key: Hashable, default: Any, *, count: bool) -> Any:
        epoch = self._memory.epoch
        found = disk.get(encode_key(key), count=count)
        if found is None:
            return default
        value, row = found
        if isinstance(value, np.memmap):
            # Already in memory (the page cache); holding it would also hold a descriptor.
            return value
        ttl = None if row.expires is None else row.expires - time.time()
        self._memory.promote(
            key, value, size=estimate_size(value), ttl=ttl, tags=row.tag_tuple(), epoch=epoch
        )
        return value

    def _peek(self, key: Hashable) -> Any:
        """The value of ``key`` in either tier, or ``MISSING``; no statistics counted."""
        value = self._memory.peek(key)
        disk = self._disk
        if value is MISSING and disk is not None:
            with self._unless_damaged:
                value = self._from_disk(disk, key, MISSING, count=False)
        return value

    def __contains__(self, key: Hashable) -> bool:
        """Whether ``key`` has a live entry in either tier (statistics are not touched)."""
        self._check_open()
        try:
            if self._memory.contains(key):
                return True
        except TypeError as exc:
            raise self._unhashable(key) from exc
        disk = self._disk
        found = False
        if disk is not None:
            with self._unless_damaged:
                found = disk.contains(encode_key(key))
        return found
