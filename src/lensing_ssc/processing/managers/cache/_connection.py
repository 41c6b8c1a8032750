"""The disk tier's access to its index: one lock, a connection per process, batched reads.

:class:`IndexAccess` owns what every disk-tier call goes through: the lock that makes the
SQLite connection safe for threads, the connection itself (reopened in a forked child, since
a connection must not cross a fork), and the reads not yet written to the index (access
times, use counts, counter increments: :mod:`._read_batch`), which the next write
transaction applies first.
``with access.locked as index`` and ``with access.write as (index, conn)`` are plain
classes rather than generator context managers because the tier enters one per call and
these cost a fraction as much. SQLite errors leave them as ``CacheError``; one that says
the index is damaged first has it replaced by an empty one (:mod:`._damage`), once per
process: after a second damage, or a replacement that fails, the access is ``broken`` and
every call raises at once (the manager then goes on without its disk tier).

It also chooses the index's journal mode once per directory (``cache.journal_mode``:
WAL on a local disk, DELETE on a filesystem several hosts share; see :mod:`._filesystem`).
What is read and written is the disk tier's business (:mod:`._disk`); the SQL is in
:mod:`._index` and :mod:`._database`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from lensing_ssc.core.base.exceptions import CacheError

from ._damage import FileIdentity, file_identity, is_index_damaged, replace_index
from ._database import COUNTERS, IndexModeError
from ._filesystem import choose_journal_mode, filesystem_type
from ._index import Index
from ._read_batch import ReadBatch
from ._reserve import is_disk_full

_log = logging.getLogger("lensing_ssc.processing.managers.cache")
_ROOM_TO_OPEN = 1 << 20  # free bytes below which a failure to open is put down to a full disk


def _free_bytes(directory: Path) -> int:
    """Free bytes on the filesystem of ``directory`` (or its nearest existing parent).

    A filesystem that reports no size at all (``/proc``, ``/sys``) holds no files, so it
    counts as roomy: what fails there is the directory, not the disk.
    """
    for path in (directory, *directory.parents):
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        return usage.free if usage.total > 0 else _ROOM_TO_OPEN
    return _ROOM_TO_OPEN


__all__ = ["INDEX_NAME", "VALUES_DIR", "IndexAccess"]

INDEX_NAME = "index.sqlite"
VALUES_DIR = "values"


class IndexAccess(ReadBatch):
    """Thread-safe, fork-aware access to one cache directory's index.

    Args:
        directory: The cache directory (created with its ``values/`` if missing).
        policy: The eviction policy the index is opened for.
        journal_mode: ``cache.journal_mode``: ``"auto"``, ``"wal"`` or ``"delete"``.
        fstype: Tells a directory's filesystem type for ``"auto"`` (``None``: unknown);
            tests inject one.

        repair: Replace a damaged index by an empty one (:mod:`._damage`), once in this
            process's life; a second damage, or a replacement that fails, leaves the access
            :attr:`broken`. ``False``: a damaged index is an error (the command line asks
            before replacing one).

    Raises:
        CacheError: The directory cannot be created or written, holds a foreign index,
            holds an index other processes use in another journal mode, or holds a
            damaged index that is not to be (or cannot be) replaced.
    """

    def __init__(
        self,
        directory: Path,
        *,
        policy: str,
        journal_mode: str = "auto",
        fstype: Callable[[Path], str | None] = filesystem_type,
        repair: bool = True,
    ) -> None:
        self.directory = directory
        self.policy = policy
        self.journal_setting = journal_mode
        self.repair = repair
        self.replaced = 0  # damaged indexes this access replaced
        self.generation = 0  # connections opened before the current one
        self.broken: CacheError | None = None  # why the index cannot be used any more
        self._fstype = fstype
        self._identity: FileIdentity | None = None  # the index file this access opened
        self.journal_mode = ""  # "wal" or "delete", once opened
        self.lock = threading.Lock()
        super().__init__()
        self.locked = _Locked(self)
        self.write = _Write(self)
        self._pid = os.getpid()
        self._index = self._open()

    def _open(self) -> Index:
        values = self.directory / VALUES_DIR
        # A directory without values/ did not hold a cache: an index.sqlite there that
        # cannot be read may be someone else's file, and is refused, never replaced.
        ours = values.is_dir()
        try:
            values.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=values):
                pass
            found = file_identity(self.directory / INDEX_NAME)
            try:
                return self._connect()
            except sqlite3.DatabaseError as exc:
                if not (ours and self.repair and not self.replaced and is_index_damaged(exc)):
                    raise
                try:
                    self._replace(found, exc)
                except OSError as failure:
                    raise self._unreplaceable(exc, failure) from exc
                return self._connect()
        except IndexModeError as exc:
            raise CacheError(
                f"cache directory {str(self.directory)!r} cannot be opened with "
                f"cache.journal_mode={self.journal_setting!r}: {exc}",
                value=self.journal_setting,
                hint="give every process of the cache the same cache.journal_mode ('auto' "
                "or 'delete' on a filesystem shared by hosts), or clear the cache",
            ) from exc
        except (OSError, sqlite3.Error) as exc:
            if is_index_damaged(exc):
                if not ours:  # not a damaged cache: a file of someone else's
                    raise CacheError(
                        f"cache directory {str(self.directory)!r} is not usable: its "
                        f"{INDEX_NAME} is not a cache index ({exc})",
                        value=str(self.directory),
                        hint="give the cache a directory of its own (cache_dir=...)",
                    ) from None
                self.broken = self._damaged(exc, replaced=False)
                raise self.broken from exc
            if is_disk_full(exc) or (
                # SQLite says "disk I/O error" when it cannot even start its log.
                isinstance(exc, sqlite3.Error) and _free_bytes(self.directory) < _ROOM_TO_OPEN
            ):
                raise CacheError(
                    f"cache directory {str(self.directory)!r} cannot be opened: the disk "
                    f"holding it is full ({exc})",
                    value=str(self.directory),
                    hint="free disk space; the cache's own files may go (delete the "
                    "directory: it is rebuilt as values are computed again), or move the "
                    "cache with cache.dir",
                ) from exc
            raise CacheError(
                f"cache directory {str(self.directory)!r} is not usable: {exc}",
                value=str(self.directory),
                hint="give a writable directory (cache_dir=...) or cache_dir=None for memory only",
            ) from exc

    def _connect(self) -> Index:
        """Open the index file and read its totals (a damaged file fails here, or later)."""
        mode = choose_journal_mode(self.journal_setting, self.directory, fstype=self._fstype)
        index = Index(
            self.directory / INDEX_NAME,
            policy=self.policy,
            journal_mode=mode,
            follow_recorded=self.journal_setting == "auto",
        )
        try:
            index.totals()
        except BaseException:
            index.close()
            raise
        self.journal_mode = index.journal_mode
        self._identity = file_identity(self.directory / INDEX_NAME)
        return index

    def _replace(self, damaged: FileIdentity | None, cause: sqlite3.Error) -> None:
        """Remove the damaged index and its value files (see :mod:`._damage`), and log it."""
        self.replaced += 1
        files, size = replace_index(
            self.directory / INDEX_NAME, self.directory / VALUES_DIR, damaged
        )
        _log.warning(
            "the cache index in %r was damaged (%s): it was replaced by an empty one%s; "
            "what it held is computed again when needed",
            str(self.directory),
            cause,
            f", and its {files} value files ({size / 2**20:.1f} MiB) removed" if files else "",
        )

    def _damaged(self, exc: BaseException, *, replaced: bool) -> CacheError:
        if replaced:
            return CacheError(
                f"the cache index in {str(self.directory)!r} was damaged ({exc}); it has "
                "been replaced by an empty one",
                value=str(self.directory),
                hint="nothing to do: what it held is computed again when needed",
            )
        return CacheError(
            f"the cache index in {str(self.directory)!r} is damaged ({exc})",
            value=str(self.directory),
            hint="replace it by an empty one with `lensing-ssc cache clean RUN_DIR` (or "
            "remove the cache directory): a cache holds nothing that cannot be computed again",
        )

    def _unreplaceable(self, exc: BaseException, failure: BaseException) -> CacheError:
        """Mark the access :attr:`broken`: its damaged index could not be replaced."""
        _log.warning(
            "the damaged cache index in %r could not be replaced: %s", str(self.directory), failure
        )
        self.broken = self._damaged(exc, replaced=False)
        self.broken.__cause__ = exc
        return self.broken

    def recover(self, exc: sqlite3.Error, generation: int) -> CacheError:
        """Replace a damaged index met by a call (lock not held); the error the call raises.

        Once per access: a second damage, or a replacement that fails, marks the access
        :attr:`broken`, and every later call raises at once without touching SQLite. A call
        that ran on a connection replaced since (``generation``: see :attr:`generation`) met
        the damage already dealt with.
        """
        with self.lock:
            if self.broken is not None:
                return self.broken
            if generation != self.generation:
                return self._damaged(exc, replaced=True)
            if self.repair and not self.replaced:
                old = self._index
                try:
                    self._replace(self._identity, exc)  # the old file stays open: its inode
                    with contextlib.suppress(sqlite3.Error):  # is not reused meanwhile
                        old.close()
                    self._index = self._connect()
                except (OSError, sqlite3.Error) as failure:
                    return self._unreplaceable(exc, failure)
                self.generation += 1
                self.pending.clear()
                self.counts = dict.fromkeys(COUNTERS, 0)
                self.dirty = False
                return self._damaged(exc, replaced=True)
            self.broken = self._damaged(exc, replaced=False)
            self.broken.__cause__ = exc
            return self.broken

    def current(self) -> Index:
        """The index connection of this process (lock held); reopened after a fork.

        Raises:
            CacheError: The index is damaged and was not replaced (:attr:`broken`).
        """
        if self.broken is not None:
            raise self.broken
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self.pending.clear()
            self._index = self._open()
            self.generation += 1
        return self._index

    def after_fork_in_child(self) -> None:
        """In a forked child: a new lock, and none of the parent's batched reads.

        The parent's connection is not used here: :meth:`current` opens this process's own.
        """
        self.lock = threading.Lock()
        self.pending = {}
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.dirty = False

    def failed(self, exc: sqlite3.Error, generation: int) -> CacheError:
        """The error a failed SQLite call becomes (lock not held); a damaged index is replaced.

        ``generation`` is :attr:`generation` when the call ran.
        """
        if is_index_damaged(exc):
            return self.recover(exc, generation)
        return CacheError(
            f"the cache index in {str(self.directory)!r} failed: {exc}",
            value=str(self.directory),
            hint="another process may hold it too long; `lensing-ssc cache stats RUN_DIR` "
            "shows whether it can be read",
        )

    def flush(self) -> None:
        """Write the batched reads now, if there are any."""
        with self.lock:
            idle = not self.pending and not self.dirty
        if not idle:
            with self.write:
                pass

    def close(self) -> None:
        """Write the batched reads and close this process's connection."""
        try:
            self.flush()
        finally:
            with self.lock:
                if os.getpid() == self._pid:
                    self._index.close()


class _Locked:
    """``with access.locked as index``: the lock and this process's connection."""

    __slots__ = ("access",)

    def __init__(self, access: IndexAccess) -> None:
        self.access = access

    def __enter__(self) -> Index:
        access = self.access
        access.lock.acquire()
        try:
            return access.current()
        except BaseException:
            access.lock.release()
            raise

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        access = self.access
        generation = access.generation  # the connection this call used
        access.lock.release()
        if isinstance(exc, sqlite3.Error):
            raise access.failed(exc, generation) from exc


class _Write:
    """``with access.write as (index, conn)``: one write transaction, lock held.

    It begins with the batched reads, commits on success and rolls back on any exception.
    Only one thread holds the lock, so keeping the index on the instance is safe.
    """

    __slots__ = ("access", "index")

    def __init__(self, access: IndexAccess) -> None:
        self.access = access
        self.index: Index | None = None

    def __enter__(self) -> tuple[Index, sqlite3.Connection]:
        access = self.access
        index = access.locked.__enter__()
        try:
            conn = index.begin()
        except BaseException as exc:
            access.locked.__exit__(type(exc), exc, None)
            raise
        self.index = index
        try:
            access.drain(index, conn)
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return index, conn

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        index, self.index = self.index, None
        try:
            if index is not None:
                if exc is None:
                    index.commit()
                else:
                    index.rollback()
        except sqlite3.Error as failure:
            if index is not None:
                with contextlib.suppress(sqlite3.Error):
                    index.rollback()
            self.access.locked.__exit__(type(failure), failure, None)
            raise
        self.access.locked.__exit__(kind, exc, trace)
