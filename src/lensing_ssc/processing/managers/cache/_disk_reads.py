"""The disk tier's read side: values found by key, and the counts it reports.

:class:`DiskReads` is the base of :class:`~._disk.DiskTier`: it declares the state the tier
reads through (the index access, its lock, the values directory, this process's counters)
and reads it. A lookup finds the key's row, takes an expired entry away, and loads the value
inline or from its value file; a value replaced meanwhile is read again, a corrupt or
missing one is a miss and its entry is removed. Hits batch their access times and counts
(:mod:`._read_batch`), written with the next write transaction or by :meth:`~DiskReads.flush`.
The statistics are this process's counters (:meth:`~DiskReads.stats`), every process's
lookups since the tier opened (:meth:`~DiskReads.shared_stats`) and the index's cumulative
totals (:meth:`~DiskReads.totals`).

Not here: opening the tier, forks, the write path and upkeep (:mod:`._disk`); the SQL
(:mod:`._index`); decoding values (:mod:`._values`).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from lensing_ssc.processing.managers.cache._disk import DiskTier
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     tier = DiskTier(
    ...         Path(directory), max_bytes=1 << 20, policy="lru", codec="none", memory_map=False
    ...     )
    ...     outcome = tier.put(b"k", [1, 2], label="k", ttl=None, tags=())
    ...     found = tier.get(b"k")
    ...     tier.close()
    >>> found[0], tier.hits, tier.misses
    ([1, 2], 1, 0)
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._connection import IndexAccess, _Locked, _Write
from ._index import Row, Victim
from ._reclaim import Room
from ._reserve import suppress_disk_full
from ._stats import SharedStats, TierStats
from ._values import CorruptEntry, MemoryMap, decode_value, read_value_file, verify_digest

__all__ = ["DiskReads"]


class DiskReads:
    """The read side of a :class:`~._disk.DiskTier`, which sets every attribute here."""

    max_bytes: int  # most payload bytes stored
    memory_map: MemoryMap  # how raw arrays come back from value files
    _values: Path  # the directory of value files
    _access: IndexAccess  # the index: its lock, this process's connection, batched reads
    _locked: _Locked  # ``with self._locked as index``: the lock and the connection
    _write: _Write  # ``with self._write as (index, conn)``: a write transaction
    _lock: threading.Lock  # the access's lock (new in a forked child)
    _room: Room  # what gives space back; counts its own evictions
    _opened: float  # when this tier opened (time.time())
    _opened_with: dict[str, int]  # the index's totals then
    hits: int
    misses: int
    evictions: int
    expirations: int
    rejected: int

    def _count(self, name: str, amount: int = 1) -> None:
        """Count for this process and for the index's totals (lock held)."""
        setattr(self, name, getattr(self, name) + amount)
        self._access.count(name, amount)

    def _unlink(self, victims: Sequence[Victim]) -> None:
        for victim in victims:
            if victim.file is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._values / victim.file)

    def get(self, key: bytes, *, count: bool = True) -> tuple[Any, Row] | None:
        """The value stored under ``key`` and its row, or ``None``.

        Args:
            key: The canonical encoding of the key.
            count: Count the hit or miss and the access (``False`` for polling).
        """
        for _ in range(3):  # a value file may be replaced between reading its row and it
            with self._locked as index:
                row = index.find(key)
            if row is None:
                break
            if row.expires is not None and row.expires <= time.time():
                with suppress_disk_full():  # else it stays, a miss, until there is room
                    with self._write as (index, conn):
                        removed = index.delete_row(conn, row)
                        if removed:
                            self._count("expirations")
                    self._unlink(removed)
                break
            try:
                value = self._load(row)
            except FileNotFoundError:
                with self._locked as index:
                    if index.find(key) != row:
                        continue  # replaced meanwhile: read the new entry
                self._drop(row)
                break
            except CorruptEntry:
                self._drop(row)
                break
            if not count:
                return value, row
            with self._lock:
                self._count("hits")
                due = self._access.record_read(key)
            if due:
                with suppress_disk_full():  # the batch is dropped: access times can wait
                    self._access.flush()
            return value, row
        if count:
            with self._lock:
                self._count("misses")
        return None

    def _load(self, row: Row) -> Any:
        if row.inline is not None:
            if not verify_digest(row.inline, row.digest):
                raise CorruptEntry("inline value fails its digest")
            return decode_value(row.kind, row.codec, row.meta, row.inline)
        if row.file is None:
            raise CorruptEntry("entry has neither an inline value nor a value file")
        return read_value_file(
            self._values / row.file,
            kind=row.kind,
            codec=row.codec,
            meta=row.meta,
            size=row.size,
            digest=row.digest,
            memory_map=self.memory_map,
        )

    def _drop(self, row: Row) -> None:
        """Remove a row found unreadable; on a full disk it stays, read as a miss each time."""
        with suppress_disk_full():
            self._remove(row)

    def _remove(self, row: Row) -> None:
        with self._write as (index, conn):
            removed = index.delete_row(conn, row)
        self._unlink(removed)

    def contains(self, key: bytes) -> bool:
        """Whether ``key`` has an entry that has not expired (its value is not read)."""
        with self._locked as index:
            return index.contains(key, time.time())

    def flush(self) -> None:
        """Write batched access times and counters to the index now."""
        self._access.flush()

    def stats(self) -> TierStats:
        """This process's counters, and the bytes and entries the directory holds."""
        with self._locked as index:
            totals = index.totals()
            return TierStats.build(
                "disk",
                self.hits,
                self.misses,
                evictions=self.evictions + self._room.evictions,
                expirations=self.expirations + self._room.expirations,
                rejected=self.rejected + self._room.rejected,
                bytes=totals["bytes"],
                entries=totals["entries"],
                max_bytes=self.max_bytes,
                max_entries=None,
            )

    def shared_stats(self) -> SharedStats:
        """Lookups of every process sharing the directory since this tier opened.

        The index's counters, plus this process's not yet written, less what they were at
        opening. Other processes' lookups arrive with their batched writes (at most a
        second or so late) and when their caches close.
        """
        with self._locked as index:
            totals = index.totals()
            pending = dict(self._access.counts)
        hits, misses = (
            max(0, totals[name] + pending[name] - self._opened_with[name])
            for name in ("hits", "misses")
        )
        return SharedStats.build(hits, misses, since=self._opened)

    def totals(self) -> dict[str, Any]:
        """Cumulative counters of every process, bytes, entries and entries per tag."""
        self.flush()
        with self._locked as index:
            totals: dict[str, Any] = index.totals()
            totals["tags"] = index.tag_counts()
        return totals
