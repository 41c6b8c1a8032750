"""The disk tier's free-space reserve: the room the cache always leaves on its filesystem.

The cache is disposable: what it holds can be computed again, whereas a run's journal,
logs, results and checkpoints, and other people's files on the same disk, cannot. So the
disk tier keeps a reserve of free space on its filesystem. Before a write it asks
:class:`SpaceGuard` how much room it lacks, evicts that much, and stores nothing while the
filesystem stays short; a write that finds the disk full anyway (:func:`is_disk_full`) is
dropped the same way. Opening the tier restores the reserve too, so a run stopped by a
full disk starts again as it is. There is no watch thread: it would make every open cache
cost a thread, and a fork while it held the index's lock would leave that lock held in the
child; others filling the disk while the cache sits idle are met at its next put or open.
The guard logs a warning when values start going uncached, at most once every ten minutes.

The reserve (``disk_min_free_mb``) defaults to the smaller of 1 GiB and 10 % of the
filesystem: on a large disk 1 GiB is room for a run's journal, logs, results and a
checkpoint or two next to whatever else runs there; on a small one (a quota, a tmpfs, a
node's scratch) a tenth still leaves them room without taking most of the disk from the
cache.

Free space is read with one ``statvfs`` (:func:`free_space`, the one function tests
replace). That costs about 2 µs on a local disk, against ~170 µs for the smallest put, but a
round trip to the servers on NFS or Lustre. So a write of a value file, which costs several
round trips itself, always reads afresh; a small write (inline in the index) reuses a
reading for up to a second while the writes since it, counted here, cannot reach the
reserve; and a decision to evict or to skip is always taken on a fresh reading. Other
processes' writes are seen only through the filesystem: when several write at once, the
reserve may be entered briefly, until the next reading.

Eviction itself is the index's (:mod:`._index`); the disk tier (:mod:`._disk`) puts the
pieces together.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from lensing_ssc.core.base.exceptions import CacheError

__all__ = [
    "AUTO_RESERVE_CAP",
    "ENTRY_OVERHEAD",
    "Space",
    "SpaceGuard",
    "free_space",
    "is_disk_full",
    "suppress_disk_full",
]

AUTO_RESERVE_CAP = 1 << 30  # the automatic reserve: at most 1 GiB ...
AUTO_RESERVE_FRACTION = 0.10  # ... and at most this fraction of the filesystem
ENTRY_OVERHEAD = 32 << 10  # bytes a put writes beyond its payload: file header, blocks, index
_REUSE = 1.0  # seconds a free-space reading may serve later writes
_WARN_EVERY = 600.0  # seconds between warnings about values going uncached
_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_SQLITE_FULL = getattr(sqlite3, "SQLITE_FULL", 13)

_log = logging.getLogger("lensing_ssc.processing.managers.cache")


class Space(NamedTuple):
    """Free and total bytes of a filesystem (free: what an unprivileged user may still use)."""

    free: int
    total: int


def free_space(path: Path) -> Space:
    """The free and total bytes of the filesystem holding ``path``."""
    usage = shutil.disk_usage(path)
    return Space(usage.free, usage.total)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, says the disk or quota is full.

    That is an ``OSError`` with ``ENOSPC`` or ``EDQUOT``, or SQLite's ``SQLITE_FULL``
    ("database or disk is full").
    """
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
            if code is None:
                return str(exc) == "database or disk is full"
            return bool(code & 0xFF == _SQLITE_FULL)
        exc = exc.__cause__
    return False


@contextlib.contextmanager
def suppress_disk_full() -> Iterator[None]:
    """Let a write that only tidies up (access times, an expired row, a lease) wait for room.

    A ``CacheError`` raised because the disk is full is swallowed; any other propagates.
    """
    try:
        yield
    except CacheError as exc:
        if not is_disk_full(exc):
            raise


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class SpaceGuard:
    """How much room the disk tier lacks to keep its reserve free; warns when it gives up.

    Thread-safe. Processes each have their own guard and see each other's writes only in
    the free space the filesystem reports.

    Args:
        directory: The cache directory (its filesystem is the one watched).
        min_free_mb: The reserve in MiB; ``None`` for the smaller of 1 GiB and 10 % of the
            filesystem; ``0`` for none.
    """

    def __init__(self, directory: Path, *, min_free_mb: float | None) -> None:
        self.directory = directory
        self.min_free_mb = min_free_mb
        self._lock = threading.Lock()
        self._space: Space | None = None
        self._read_at = -math.inf
        self._written = 0  # bytes this process wrote since the reading
        self._warned_at = -math.inf
        self._unwarned = 0  # values gone uncached since the last warning

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock, and a fresh reading at the next write."""
        self._lock = threading.Lock()
        self._space = None
        self._written = 0

    @property
    def enabled(self) -> bool:
        """Whether there is a reserve to keep."""
        return self.min_free_mb != 0

    def reserve(self, total: int) -> int:
        """The reserve, in bytes, on a filesystem of ``total`` bytes."""
        if self.min_free_mb is None:
            return min(AUTO_RESERVE_CAP, int(total * AUTO_RESERVE_FRACTION))
        return int(self.min_free_mb * 1024 * 1024)

    def shortfall(self, incoming: int, *, fresh: bool = False) -> int:
        """Bytes to free before ``incoming`` bytes can be written without entering the reserve.

        ``0`` means go ahead (also when there is no reserve, or free space cannot be read).
        ``fresh`` reads the free space now rather than reuse a recent reading.
        """
        if not self.enabled:
            return 0
        with self._lock:
            space = self._space
            stale = fresh or space is None or time.monotonic() - self._read_at > _REUSE
            if space is not None and not stale:
                left = space.free - self._written - incoming
                stale = left < self.reserve(space.total)
            if stale:
                space = self._read()
            if space is None:
                return 0
            return max(0, self.reserve(space.total) + incoming + self._written - space.free)

    def _read(self) -> Space | None:
        try:
            space = free_space(self.directory)
        except OSError:  # the directory went away: let the write itself find out
            self._space = None
            return None
        self._space, self._read_at, self._written = space, time.monotonic(), 0
        return space

    def wrote(self, size: int) -> None:
        """Count ``size`` bytes written since the last reading."""
        with self._lock:
            self._written += size

    def forget(self) -> None:
        """Drop the reading: files were removed, or a write found the disk full."""
        with self._lock:
            self._space = None

    def going_without(self) -> None:
        """Note a value not stored for lack of room; warn if no warning came lately."""
        with self._lock:
            self._unwarned += 1
            now = time.monotonic()
            if now - self._warned_at < _WARN_EVERY:
                return
            repeat = self._warned_at > -math.inf
            count, self._unwarned, self._warned_at = self._unwarned, 0, now
            space = self._space if self._space is not None else self._read()
        if self.min_free_mb is not None:
            reserve: int | None = self.reserve(0)
        else:
            reserve = None if space is None else self.reserve(space.total)
        _log.warning(
            "the cache in %r is not storing values: the disk is nearly full (%s free%s)%s. "
            "Values are still computed and returned, only not cached on disk, until there is "
            "room again (free disk space, move the cache elsewhere with cache.dir%s)",
            str(self.directory),
            "an unknown amount" if space is None else _size(space.free),
            f"; the cache keeps {_size(reserve)} free for other files" if reserve else "",
            f"; {count} values went uncached since the last warning" if repeat else "",
            ", or lower cache.disk_min_free_mb" if reserve else "",
        )
