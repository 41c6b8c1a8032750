"""Making room on the filesystem for the disk tier: its log, stray files, value files.

When :class:`~._reserve.SpaceGuard` says a write would enter the free-space reserve, or the
filesystem has fallen below it, :class:`Room` gives space back. The index's
write-ahead log only repeats what the database already holds, and between automatic
checkpoints it grows to tens of MB, so a log of 1 MiB or more is checkpointed and cut to
nothing first. Then expired entries go, then entries with value files in the tier's
eviction order; inline entries are left alone, since the pages they free stay with the
database for its next rows and give the filesystem nothing. Separately, an hourly sweep
removes value files no entry refers to (left by killed writers) and temporary files of dead
writers.

What is kept free, and when to warn, is :mod:`._reserve`'s business; the tier (:mod:`._disk`)
decides when to make room.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from lensing_ssc.core.base.exceptions import CacheError
from lensing_ssc.core.io import cleanup_temp_files

from ._connection import INDEX_NAME, VALUES_DIR, IndexAccess
from ._index import Victim
from ._reserve import SpaceGuard, is_disk_full, suppress_disk_full

__all__ = ["ORPHAN_AGE", "Room"]

ORPHAN_AGE = 600.0  # seconds a value file without an entry is left to its writer
_SWEEP_EVERY = 3600.0  # seconds between sweeps for orphaned value files
_ROUNDS = 4  # attempts to make room before a put goes without storing
_LOG_SLACK = 1 << 20  # bytes of write-ahead log worth giving back when space is short


class Room:
    """Gives space back to the filesystem for one disk tier, in this process.

    Args:
        access: The tier's index access.
        guard: The tier's free-space guard.
        unlink: Removes the value files of removed entries (after their commit).

    Attributes:
        evictions: Entries this process evicted to make room.
        expirations: Expired entries it removed on the way.
        rejected: Values it went without storing for lack of room.
    """

    def __init__(
        self,
        access: IndexAccess,
        guard: SpaceGuard,
        *,
        unlink: Callable[[Sequence[Victim]], None],
    ) -> None:
        self.access = access
        self.guard = guard
        self.unlink = unlink
        self.evictions = self.expirations = self.rejected = 0
        self._log = access.directory / f"{INDEX_NAME}-wal"
        self._values = access.directory / VALUES_DIR

    def make(self, size: int, *, fresh: bool = False, partial: bool = False) -> bool:
        """Make room for ``size`` more bytes above the reserve; whether there is.

        Nothing is evicted when evicting every value file would not make room, unless
        ``partial`` (the cache then gives back what it can).

        Args:
            size: Bytes about to be written.
            fresh: Read the free space now (for a value file) rather than reuse a reading.
            partial: Evict even when that cannot make enough room.

        Raises:
            CacheError: The index fails, also because the disk is full.
        """
        last: int | None = None
        for _ in range(_ROUNDS):
            short = self.guard.shortfall(size, fresh=fresh)
            if not short:
                return True
            if last is not None and short >= last:
                # The last round gave nothing back: its files are still open (memory maps
                # of readers, say) or the filesystem frees lazily. Evicting more would
                # empty the cache for nothing.
                return False
            last = short
            if self._cut_log():
                continue
            with self.access.locked as index:
                evictable = index.file_bytes()
            if not evictable or (evictable < short and not partial):
                return False
            self.free(short)
            fresh = True
        return not self.guard.shortfall(size)

    def keep_reserve(self) -> None:
        """Give back what the cache can while the filesystem is short of the reserve."""
        with suppress_disk_full():
            self.make(0, fresh=True, partial=True)

    def free(self, amount: int) -> bool:
        """Evict expired entries, then value files in order, to free ``amount`` bytes.

        Returns:
            Whether anything was removed.
        """
        removed: list[Victim] = []
        try:
            with self.access.write as (index, conn):
                removed, evicted = index.free_files(conn, amount, time.time())
        except CacheError as exc:
            if not removed or not is_disk_full(exc):
                raise
            # Too full even to record the removal: the files go all the same, and their
            # entries read as misses (a missing value file is one) until a write removes them.
            self.unlink(removed)
            self.guard.forget()
            return True
        with self.access.lock:
            self.evictions += evicted
            self.expirations += len(removed) - evicted
        self.unlink(removed)
        self.guard.forget()
        return bool(removed)

    def go_without(self, key: bytes, label: Any) -> None:
        """Count a value not stored for lack of room, and remove the entry it replaces.

        Raises:
            CacheError: The disk is too full even to remove the replaced entry, which
                would otherwise be read later in place of the new value.
        """
        with self.access.lock:
            self.rejected += 1
            self.access.count("rejected")
        self.guard.going_without()
        with self.access.locked as index:
            row = index.find(key)
        if row is None:
            return
        try:
            with self.access.write as (index, conn):
                removed = index.delete_row(conn, row)
            self.unlink(removed)
        except CacheError as exc:
            if not is_disk_full(exc):
                raise
            if row.expires is not None and row.expires <= time.time():
                return  # read as a miss anyway
            if row.file is None:
                raise CacheError(
                    f"the disk holding {str(self.access.directory)!r} is full: the cache could "
                    f"neither store the new value of key {label!r} nor remove the old one",
                    value=label,
                    hint="free disk space, or clear the cache (lensing-ssc cache clear RUN_DIR)",
                ) from exc
            self.unlink([Victim(row.file, row.size)])  # its entry now reads as a miss

    def _cut_log(self) -> bool:
        """Checkpoint and truncate a grown write-ahead log; whether it shrank."""
        if self._log_size() < _LOG_SLACK:
            return False
        with self.access.locked as index:
            index.truncate_log()
        self.guard.forget()
        return self._log_size() < _LOG_SLACK  # not if other processes' readers held it

    def _log_size(self) -> int:
        try:
            return self._log.stat().st_size
        except FileNotFoundError:
            return 0

    def sweep_due(self) -> bool:
        """Whether the last sweep of the directory, by any process, is over an hour old."""
        with self.access.locked as index:
            last = index.meta("swept")
        return last is None or time.time() - float(last) > _SWEEP_EVERY

    def sweep(self, *, orphan_age: float = ORPHAN_AGE) -> int:
        """Remove stray value files and temporary files of dead writers; how many.

        Value files no entry refers to are removed once ``orphan_age`` seconds old.
        """
        with self.access.locked as index:
            known = index.files()
        removed = 0
        now = time.time()
        for bucket in sorted(self._values.iterdir()):
            if not bucket.is_dir():
                continue
            removed += len(cleanup_temp_files(bucket))
            for path in bucket.glob("*.val"):
                name = f"{bucket.name}/{path.name}"
                with contextlib.suppress(FileNotFoundError):
                    if name not in known and now - path.stat().st_mtime > orphan_age:
                        path.unlink()
                        removed += 1
        with self.access.write as (index, conn):
            index.set_meta(conn, "swept", now)
        return removed
