"""The disk tier: values that outlive the process, shared by every process of a run.

Layout of a cache directory::

    index.sqlite (+ -wal, -shm)    the index (:mod:`._index`; -journal in DELETE mode)
    values/ab/<key digest>.<token>.val   value files of large values (:mod:`._values`)

A put encodes the value and, if it is large, drops the entry it replaces, then writes its
value file (atomically, durably unless the put says otherwise, outside any lock) *before* one
index transaction makes it visible and evicts what no longer fits; evicted files are unlinked
after the commit. A process killed at any moment therefore leaves either the old entry or the
new one, and at worst a value file no entry refers to, which :meth:`DiskTier.sweep` removes
later. Readers take no write lock: access times, use counts and counters are batched and
written with the next write transaction (or once a second). A corrupt or missing value is a
miss, and its entry is removed; a damaged index is replaced by an empty one
(:mod:`._damage`), once per process: after a second damage, or a failed replacement, the
tier is no longer :attr:`~DiskTier.usable`. Value file names come from the digest of the
key's canonical encoding plus a random token, so keys never become paths and concurrent
writers never share a file.

The tier also gives way to everything else on its filesystem (:mod:`._reserve`): before a put
it makes room (:mod:`._reclaim`) until the write leaves the free-space reserve, and if the
filesystem is still short it does not store the value (nor keep the entry it would have
replaced); opening the tier makes room the same way when others have filled the disk. A
put that finds the disk full (``ENOSPC``, ``EDQUOT``, ``SQLITE_FULL``) is cleaned up and
dropped, and writes that only tidy up (batched access times, expired rows) wait for room
instead of failing a read.

Keys reach this module already encoded (:mod:`._keys`); statistics are per process, with
cumulative totals of every process kept in the index for ``lensing-ssc cache stats`` (and,
counted from when a tier opened, for the run's status).

This module opens the tier, carries it across forks, writes and removes entries, and keeps
it tidy; the read side, lookups and the statistics, is :mod:`._disk_reads`'s.
"""

from __future__ import annotations

import contextlib
import enum
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.io import fsync_directory, hash_bytes

from ._connection import INDEX_NAME, VALUES_DIR, IndexAccess
from ._damage import is_index_damaged
from ._disk_reads import DiskReads
from ._filesystem import filesystem_type
from ._index import Victim
from ._reclaim import ORPHAN_AGE, Room
from ._reserve import ENTRY_OVERHEAD, SpaceGuard, is_disk_full, suppress_disk_full
from ._values import Encoded, MemoryMap, encode_value, write_value_file

__all__ = ["INDEX_NAME", "DiskTier", "Outcome"]

INLINE_LIMIT = 64 << 10  # payloads up to this many bytes live in the index row
# Seconds a fork waits for a call in SQLite to end (see before_fork): a call takes
# milliseconds unless it waits on another process's transaction, and a child forked then
# only loses its disk tier, where a longer wait would hold up every fork of the process.
FORK_WAIT = 2.0


class Outcome(enum.Enum):
    """What became of a value given to :meth:`DiskTier.put`."""

    STORED = "stored"
    TOO_LARGE = "too large"  # alone larger than the tier's byte limit
    NO_ROOM = "no room"  # the filesystem is short of its free-space reserve, or full


class DiskTier(DiskReads):
    """A directory of cached values with a SQLite index, safe across processes.

    Args:
        directory: The cache directory; created if missing.
        max_bytes: Most payload bytes stored; a value larger than this alone is rejected.
        policy: ``"lru"``, ``"lfu"`` or ``"fifo"``, the order of eviction.
        codec: Compression spec for :func:`lensing_ssc.core.io.compress`.
        memory_map: Return raw arrays from value files as read-only memory maps
            (``"verify"``: and check their digest through the map).
        min_free_mb: Free space, in MiB, to leave on the filesystem (``None``: the smaller
            of 1 GiB and 10 % of it; ``0``: none). Opening the tier restores it, and
            every put keeps it.
        journal_mode: ``cache.journal_mode`` (:mod:`._filesystem`).
        fstype: Tells a directory's filesystem type for ``"auto"``; tests inject one.
        repair: Replace a damaged index by an empty one, once (see :attr:`usable`).

    Raises:
        CacheError: The directory cannot be created or written, holds a foreign index,
            or holds a damaged one that is not to be (or cannot be) replaced.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        policy: str,
        codec: Any,
        memory_map: MemoryMap,
        min_free_mb: float | None = 0.0,
        journal_mode: str = "auto",
        fstype: Callable[[Path], str | None] = filesystem_type,
        repair: bool = True,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.policy = policy
        self.codec = codec
        self.memory_map = memory_map
        self._values = directory / VALUES_DIR
        self._access = IndexAccess(
            directory, policy=policy, journal_mode=journal_mode, fstype=fstype, repair=repair
        )
        self._locked = self._access.locked
        self._write = self._access.write
        self._lock = self._access.lock
        self._fork_held = False
        self.hits = self.misses = self.evictions = self.expirations = self.rejected = 0
        self._opened = time.time()
        self.space = SpaceGuard(directory, min_free_mb=min_free_mb)
        self._room = Room(self._access, self.space, unlink=self._unlink)
        try:
            self._start()
        except CacheError as exc:
            if not is_index_damaged(exc) or not self.usable:
                raise
            self._start()  # the damaged index was replaced by an empty one: start on that

    def _start(self) -> None:
        with self._locked as index:
            self._opened_with = index.totals()  # every process's lookups before this one
        if self._room.sweep_due():
            with suppress_disk_full():  # the files go; only the note of when waits
                self.sweep()
        if self.space.enabled:
            self._room.keep_reserve()  # a run that stopped on a full disk can start again

    def before_fork(self) -> None:
        """Wait for no thread to be inside SQLite, so that a forked child can open the index.

        SQLite's own locks and lock records are copied into the child as they are; a thread
        inside a call at the fork would leave them taken there for ever. Every call of this
        tier runs under its lock, so holding it across the fork is enough.
        """
        self._fork_held = self._lock.acquire(timeout=FORK_WAIT)

    def after_fork(self, *, in_child: bool) -> bool:
        """Release the lock; in a child, new locks. Whether the tier is usable afterwards.

        A child forked while a call went on past :data:`FORK_WAIT` (SQLite waiting for
        another process's transaction) cannot trust SQLite's state: not usable there.
        """
        held, self._fork_held = self._fork_held, False
        if not in_child:
            if held:
                self._lock.release()
            return True
        self._access.after_fork_in_child()
        self._lock = self._access.lock
        self.space.after_fork_in_child()
        return held

    @property
    def usable(self) -> bool:
        """Whether the index can still be used: not damaged beyond the one replacement."""
        return self._access.broken is None

    @property
    def journal_mode(self) -> str:
        """The index's SQLite journal mode in this process: ``"wal"`` or ``"delete"``."""
        return self._access.journal_mode

    # -- writing ------------------------------------------------------------------------
    def put(
        self,
        key: bytes,
        value: Any,
        *,
        label: Any,
        ttl: float | None,
        tags: tuple[str, ...],
        durable: bool = True,
    ) -> Outcome:
        """Store ``value`` under ``key``, unless it is too large or there is no room for it.

        Args:
            key: The canonical encoding of the key.
            value: The value.
            label: The key as the user gave it, named in errors.
            ttl: Seconds to live, or ``None``.
            tags: Tags of the entry.
            durable: ``fsync`` a value file before the entry becomes visible.

        Returns:
            :attr:`Outcome.STORED`; :attr:`Outcome.TOO_LARGE` if the value alone exceeds the
            byte limit; :attr:`Outcome.NO_ROOM` if storing it would enter the free-space
            reserve even after evicting, or the disk was full. Either way an entry the value
            would have replaced is removed.

        Raises:
            CacheError: ``value`` cannot be pickled, or the directory cannot be written for a
                reason other than a full disk.
        """
        encoded = encode_value(value, key=label, codec=self.codec)
        if encoded.size > self.max_bytes:
            with self._write as (index, conn):
                stale = index.delete_keys(conn, [key])
                self._count("rejected")
            self._unlink(stale)
            return Outcome.TOO_LARGE
        needed = encoded.size + ENTRY_OVERHEAD
        try:
            if self._room.make(needed, fresh=encoded.size > INLINE_LIMIT):
                self._store(key, encoded, ttl=ttl, durable=durable, tags=tags)
                self.space.wrote(needed)
                return Outcome.STORED
        except CacheError as exc:
            if not is_disk_full(exc):
                raise
            # Whatever the write left is gone already; free at least what did not fit.
            self.space.forget()
            with suppress_disk_full():
                self._room.free(max(needed, self.space.shortfall(needed)))
        self._room.go_without(key, label)
        return Outcome.NO_ROOM

    def _store(
        self,
        key: bytes,
        encoded: Encoded,
        *,
        ttl: float | None,
        durable: bool,
        tags: tuple[str, ...],
    ) -> None:
        name = None
        if encoded.size > INLINE_LIMIT:
            self._drop_replaced_file(key)
            name = self._write_file(key, encoded, durable=durable)
        fields = {
            "kind": encoded.kind,
            "codec": encoded.codec,
            "meta": encoded.meta,
            "size": encoded.size,
            "digest": encoded.digest,
            "inline": None if name is not None else encoded.payload(),
            "file": name,
            "expires": None if ttl is None else time.time() + ttl,
        }
        try:
            with self._write as (index, conn):
                now = time.time()
                used, replaced = index.insert(conn, key, fields, tags, now)
                removed, evicted = index.evict(conn, used, self.max_bytes, now)
                self.evictions += evicted  # the lock is held: counts stay exact
                self.expirations += len(removed) - evicted
        except BaseException:
            if name is not None:
                self._unlink([Victim(name, 0)])
            raise
        self._unlink(removed if replaced is None else [replaced, *removed])

    def _drop_replaced_file(self, key: bytes) -> None:
        """Remove the entry a large value replaces, and its file, before writing the new one.

        The old and new values then never need disk space at once, and the filesystem can
        reuse the old value's blocks (on virtual disks, fresh blocks cost several times
        more to write). Until the new value is committed, the key is a miss.
        """
        with self._locked as index:
            row = index.find(key)
        if row is not None and row.file is not None:
            self._drop(row)

    def _write_file(self, key: bytes, encoded: Encoded, *, durable: bool) -> str:
        digest = hash_bytes(key).partition(":")[2]
        bucket = self._values / digest[:2]
        name = f"{digest[:2]}/{digest}.{secrets.token_hex(4)}.val"
        try:
            if not bucket.is_dir():
                bucket.mkdir(exist_ok=True)
                if durable:
                    fsync_directory(self._values)
            write_value_file(self._values / name, encoded, durable=durable)
        except OSError as exc:
            # The temporary file is gone; the file itself exists if only the last step failed.
            self._unlink([Victim(name, 0)])
            raise CacheError(
                f"cannot write a value file in {str(self._values)!r}: {exc}",
                value=str(self._values),
                hint="free disk space or lower disk_max_size_mb",
            ) from exc
        return name

    def delete(self, keys: Sequence[bytes]) -> int:
        """Remove the entries of ``keys``; how many there were."""
        with self._write as (index, conn):
            removed = index.delete_keys(conn, keys)
        self._unlink(removed)
        return len(removed)

    def invalidate(self, tags: Sequence[str]) -> list[bytes]:
        """Remove every entry carrying any of ``tags``; the encoded keys removed."""
        with self._write as (index, conn):
            removed = index.delete_tagged(conn, tags)
        self._unlink(removed)
        return [victim.key for victim in removed]

    def clear(self) -> int:
        """Remove every entry; how many there were."""
        with self._write as (index, conn):
            removed = index.delete_all(conn)
        self._unlink(removed)
        return len(removed)

    def expire(self) -> int:
        """Remove every expired entry; how many there were."""
        with self._write as (index, conn):
            removed = index.delete_expired(conn, time.time())
            self.expirations += len(removed)
        self._unlink(removed)
        return len(removed)

    # -- upkeep -------------------------------------------------------------------------
    def sweep(self, *, orphan_age: float = ORPHAN_AGE) -> int:
        """Remove value files no entry refers to and temporary files of dead writers.

        Args:
            orphan_age: Only remove unreferenced files not modified for this many seconds
                (a live writer commits its entry right after writing its file).

        Returns:
            The number of files removed.
        """
        return self._room.sweep(orphan_age=orphan_age)

    def close(self) -> None:
        """Flush batched reads (unless the disk is full) and close."""
        with suppress_disk_full():
            self._access.close()

    # -- leases -------------------------------------------------------------------------
    @contextlib.contextmanager
    def lease_transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the ``leases`` table, for :mod:`._memoize`."""
        with self._write as (_, conn):
            yield conn
