"""The write path of a ``CacheManager``: ``put``, removal by key or tag, expiry, ``shrink``.

Every put writes through: to the disk tier first, then to the memory tier, both under
one of 64 per-key locks, so that two puts of one key leave both tiers with
the same value. A value too large for a tier is not stored there; it is counted as
rejected, and logged once per tier as a WARNING record on the
``lensing_ssc.processing.managers.cache`` logger (not a Python warning: the caller's code is
not at fault, and a library is quiet unless logging is configured). Removing by tag counts
an entry held by both tiers once. Eviction within a tier, by ``lru``, ``lfu`` or ``fifo``,
is the tier's own (:mod:`._memory`, :mod:`._disk`); ``shrink`` asks the memory tier for it.

Reading is in :mod:`._reading`; the tiers and what a damaged disk index costs a write in
:mod:`._tiers`; the messages of rejected values in :mod:`._settings`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Iterable
from typing import Any

from lensing_ssc.core.io import estimate_size

from ._disk import Outcome
from ._keys import encode_key
from ._settings import byte_limit, check_tags, check_ttl, rejection_message, shrink_target
from ._tiers import TieredCache

__all__ = ["CacheWrites", "new_stripes"]

_log = logging.getLogger("lensing_ssc.processing.managers.cache")

_STRIPES = 64  # per-key locks keeping both tiers in one order for puts of one key


def new_stripes() -> list[threading.Lock]:
    """A fresh set of the per-key locks (for a new cache, or a forked child's)."""
    return [threading.Lock() for _ in range(_STRIPES)]


class CacheWrites(TieredCache):
    """The writing methods of :class:`~._manager.CacheManager`, over its two tiers."""

    default_ttl: float | None
    _stripes: list[threading.Lock]
    _warned: set[str]  # the tiers whose rejection of a value was logged

    def put(
        self,
        key: Hashable,
        value: Any,
        ttl: float | None = None,
        tags: Iterable[str] = (),
        *,
        durable: bool = True,
    ) -> None:
        """Cache ``value`` under ``key`` in every tier, replacing any previous value.

        Args:
            key: Any hashable; with a disk tier, made of str, bytes, int, float, bool,
                None, tuples and frozensets.
            value: Any value; with a disk tier, it must be picklable (plain numpy arrays
                are stored raw).
            ttl: Seconds to live; ``None`` uses ``default_ttl``.
            tags: Any number of tags, for :meth:`invalidate_by_tags`.
            durable: Flush a large value's file to disk (``fsync``) before the entry
                becomes visible, so that it survives a power cut. ``False`` saves that
                wait for values that are cheap to recompute: after a power cut such an
                entry may be lost, which its digest check turns into a miss. Either way a
                killed process never leaves a torn entry.

        A value larger than a tier's byte limit is not stored in that tier; it is counted
        as rejected and warned about once per tier. Nor is a value whose write would leave
        less than ``disk_min_free_mb`` free on the disk tier's filesystem even after
        evicting, or that finds the disk full: it is counted as rejected, and the first of a
        run of them logs a warning naming the directory and the free space; the put returns
        normally, and the value stays in the memory tier if it fits there.

        Raises:
            CacheError: A bad ``ttl`` or tag, an unhashable key, a key or value the disk
                tier cannot store (naming the key and the value's type), a closed cache;
                on a disk so full that an older value of ``key`` can be neither replaced
                nor removed, rather than leave it to be read later.
        """
        self._check_open()
        ttl = self.default_ttl if ttl is None else check_ttl(ttl)
        checked_tags = check_tags(tags)
        stripe = self._stripe(key)
        disk = self._disk
        encoded = None if disk is None else encode_key(key)
        size = estimate_size(value)
        with stripe:
            on_disk = False
            if disk is not None and encoded is not None:
                outcome = Outcome.NO_ROOM
                with self._unless_damaged:
                    outcome = disk.put(
                        encoded, value, label=key, ttl=ttl, tags=checked_tags, durable=durable
                    )
                on_disk = outcome is Outcome.STORED
                if outcome is Outcome.TOO_LARGE:
                    self._warn_rejected("disk", key, value)
            stored = self._memory.store(key, value, size=size, ttl=ttl, tags=checked_tags)
        if not stored:
            self._warn_rejected("memory", key, value, size=size, kept=on_disk)

    def delete(self, key: Hashable) -> bool:
        """Remove ``key`` from every tier; whether any tier held it."""
        self._check_open()
        with self._stripe(key):
            in_memory = self._memory.discard(key)
            disk = self._disk
            on_disk = False
            if disk is not None:
                with self._unless_damaged:
                    on_disk = disk.delete([encode_key(key)]) > 0
        return in_memory or on_disk

    def invalidate_by_tags(self, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of ``tags``, in every tier.

        Returns:
            The number of entries removed (an entry held by both tiers counts once).
        """
        self._check_open()
        checked = check_tags(tags)
        if not checked:
            return 0
        in_memory = self._memory.invalidate(checked)
        disk = self._disk
        on_disk: set[bytes] = set()
        if disk is not None:
            with self._unless_damaged:
                on_disk = set(disk.invalidate(checked))
        if not on_disk:
            return len(in_memory)
        return len(on_disk) + sum(encode_key(key) not in on_disk for key in in_memory)

    def clear(self) -> None:
        """Remove every entry from every tier (statistics are kept)."""
        self._check_open()
        self._memory.clear()
        disk = self._disk
        if disk is not None:
            with self._unless_damaged:
                disk.clear()

    def expire(self) -> int:
        """Remove expired entries from every tier now; the number removed."""
        self._check_open()
        removed = self._memory.purge_expired()
        disk = self._disk
        if disk is not None:
            with self._unless_damaged:
                removed += disk.expire()
        return removed

    def shrink(self, target_bytes: int | None = None, *, fraction: float | None = None) -> int:
        """Free memory: evict from the memory tier by policy down to a target.

        Puts write through to the disk tier, so what is evicted here stays available from
        disk (except values too large for the disk tier's limit). The ResourceManager's
        memory warnings call this through the ManagerContext.

        Args:
            target_bytes: Bytes the memory tier may keep.
            fraction: Or the fraction of its current bytes it may keep (``0`` empties it).
                With neither, half is kept.

        Returns:
            The bytes freed.
        """
        self._check_open()
        target = shrink_target(self._memory.bytes, target_bytes, fraction)
        return self._memory.shrink(target)

    def _stripe(self, key: Hashable) -> threading.Lock:
        """The per-key lock of ``key``.

        Raises:
            CacheError: ``key`` is unhashable.
        """
        try:
            return self._stripes[hash(key) % _STRIPES]
        except TypeError as exc:
            raise self._unhashable(key) from exc

    def _warn_rejected(
        self, tier: str, key: Hashable, value: Any, *, size: int | None = None, kept: bool = False
    ) -> None:
        with self._warn_lock:
            if tier in self._warned:
                return
            self._warned.add(tier)
        mib = self._settings.max_size_mb if tier == "memory" else self._settings.disk_max_size_mb
        limit = byte_limit(mib)
        _log.warning(rejection_message(tier, key, value, size=size, limit=limit, kept=kept))
