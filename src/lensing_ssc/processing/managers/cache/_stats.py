"""Statistics of the cache as frozen value objects.

:class:`TierStats` describes one tier (memory or disk) as this process sees it,
:class:`SharedStats` the disk lookups of every process sharing the cache directory,
:class:`CacheStats` the whole cache;
``CacheManager.get_stats()`` returns the latter and ``get_status()`` its
:meth:`CacheStats.to_dict` view. Counting itself happens in the tiers (:mod:`._memory`,
:mod:`._disk`); this module only holds and derives numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheStats", "HitCounter", "SharedStats", "TierStats"]


class HitCounter:
    """A hit counter whose increment is one C call, safe without a lock.

    Increment with ``next(counter.counter)``: ``itertools.count.__next__`` runs entirely
    in C, so concurrent increments never lose a count, and the memory tier's lock-free hit
    path stays short (the builtin ``next`` is cheaper to call than the bound
    ``__next__``). Reading advances the count once; :meth:`value` subtracts those reads.
    Call :meth:`value` under a lock.
    """

    __slots__ = ("_reads", "counter")

    def __init__(self) -> None:
        self.counter = itertools.count()
        self._reads = 0

    def value(self) -> int:
        """The number of increments so far."""
        total = next(self.counter) - self._reads
        self._reads += 1
        return total


def _rate(hits: int, misses: int) -> float:
    lookups = hits + misses
    return hits / lookups if lookups else 0.0


@dataclass(frozen=True)
class TierStats:
    """Counters and occupancy of one tier, as seen by this process.

    Attributes:
        tier: ``"memory"`` or ``"disk"``.
        hits: Lookups this tier answered.
        misses: Lookups that reached this tier and found nothing (or an expired entry).
        hit_rate: ``hits / (hits + misses)``, ``0.0`` before any lookup.
        evictions: Entries removed to respect the limits (``shrink`` included).
        expirations: Entries removed because their time-to-live had passed.
        rejected: Values not stored because they alone exceed the tier's byte limit, or
            (disk) because there was no room above the filesystem's free-space reserve.
        bytes: Bytes held now (memory: estimated live bytes; disk: bytes of stored values).
        entries: Entries held now.
        max_bytes: The tier's byte limit.
        max_entries: The tier's entry limit, ``None`` when it has none (the disk tier).
    """

    tier: str
    hits: int
    misses: int
    hit_rate: float
    evictions: int
    expirations: int
    rejected: int
    bytes: int
    entries: int
    max_bytes: int
    max_entries: int | None

    @classmethod
    def build(cls, tier: str, hits: int, misses: int, **fields: Any) -> TierStats:
        """Build the stats of one tier, deriving ``hit_rate``."""
        return cls(tier=tier, hits=hits, misses=misses, hit_rate=_rate(hits, misses), **fields)


@dataclass(frozen=True)
class SharedStats:
    """Disk-tier lookups of every process sharing the cache directory, since this cache opened.

    Counted in the directory's index, so they include the lookups of worker processes
    (and of any other run using the same directory meanwhile). Hits each process's memory
    tier answered never reach the index: they are in that process's :class:`TierStats`.

    Attributes:
        hits: Lookups the disk tier answered.
        misses: Lookups no tier could answer.
        hit_rate: ``hits / (hits + misses)``, ``0.0`` before any lookup.
        since: When this cache opened (seconds since the epoch).
    """

    hits: int
    misses: int
    hit_rate: float
    since: float

    @classmethod
    def build(cls, hits: int, misses: int, since: float) -> SharedStats:
        """Build the figures, deriving ``hit_rate``."""
        return cls(hits=hits, misses=misses, hit_rate=_rate(hits, misses), since=since)


@dataclass(frozen=True)
class CacheStats:
    """Statistics of the whole cache.

    ``hits`` counts lookups answered by any tier, ``misses`` lookups no tier could answer;
    evictions, expirations and rejections are summed over the tiers. ``bytes`` and
    ``entries`` are the memory tier's (what this process holds); the disk tier's are in
    ``disk``. All of these count this process's lookups only; ``shared`` has the disk
    lookups of every process using the cache directory (``None`` without a disk tier).

    Example:
        >>> stats = cache.get_stats()  # doctest: +SKIP
        >>> print(f"Hit rate: {stats.hit_rate:.2%}")  # doctest: +SKIP
    """

    hits: int
    misses: int
    hit_rate: float
    evictions: int
    expirations: int
    rejected: int
    bytes: int
    entries: int
    memory: TierStats
    disk: TierStats | None
    shared: SharedStats | None = None

    @classmethod
    def combine(
        cls, memory: TierStats, disk: TierStats | None, shared: SharedStats | None = None
    ) -> CacheStats:
        """The whole cache's statistics from its tiers'."""
        tiers = [memory] if disk is None else [memory, disk]
        hits = sum(tier.hits for tier in tiers)
        misses = memory.misses if disk is None else disk.misses
        return cls(
            hits=hits,
            misses=misses,
            hit_rate=_rate(hits, misses),
            evictions=sum(tier.evictions for tier in tiers),
            expirations=sum(tier.expirations for tier in tiers),
            rejected=sum(tier.rejected for tier in tiers),
            bytes=memory.bytes,
            entries=memory.entries,
            memory=memory,
            disk=disk,
            shared=shared,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready ``dict`` of every field, tiers nested."""
        return dataclasses.asdict(self)
