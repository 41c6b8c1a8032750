"""Reads of the disk tier not yet written to its index: access times, uses, counters.

A disk get must stay a read: writing the entry's access time and use count, and the
shared hit and miss counters, in a transaction of its own would cost each get a commit
(see :mod:`._index` for why this index exists). So :class:`ReadBatch` keeps them in
memory, and the next write transaction applies them first (:meth:`ReadBatch.drain`). The
read that finds the batch a second old, or holding 4096 keys, has it written on its own,
and so does closing the cache. A process killed meanwhile loses at most that much
bookkeeping, never an entry.

:class:`~._connection.IndexAccess` is a ``ReadBatch``; its lock guards the batch, and it
forgets the batch where the batch's index is gone (a fork, a replaced index).
"""

from __future__ import annotations

import sqlite3
import time

from ._database import COUNTERS
from ._index import Index

__all__ = ["ReadBatch"]

_FLUSH_EVERY = 1.0  # seconds between batched writes of reads, at most
_FLUSH_PENDING = 4096  # ... or this many distinct keys read


class ReadBatch:
    """Access times, use counts and counter increments waiting for a write transaction.

    Every method runs with the owner's lock held.
    """

    def __init__(self) -> None:
        self.pending: dict[bytes, list[float]] = {}  # key -> [last access, uses]
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.dirty = False  # counts hold increments not yet written
        self.last_flush = time.monotonic()

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a cumulative counter of the index (lock held); written with the batch."""
        self.counts[name] += amount
        self.dirty = True

    def record_read(self, key: bytes) -> bool:
        """Note a read of ``key`` (lock held); whether the batch is due to be written."""
        now = time.time()
        seen = self.pending.get(key)
        if seen is None:
            self.pending[key] = [now, 1]
        else:
            seen[0] = now
            seen[1] += 1
        return (
            len(self.pending) >= _FLUSH_PENDING or time.monotonic() - self.last_flush > _FLUSH_EVERY
        )

    def drain(self, index: Index, conn: sqlite3.Connection) -> None:
        """Write the batched reads inside an open transaction (lock held)."""
        if self.pending or self.dirty:
            index.flush(conn, self.pending, self.counts)
            self.pending.clear()
            self.counts = dict.fromkeys(COUNTERS, 0)
            self.dirty = False
        self.last_flush = time.monotonic()
