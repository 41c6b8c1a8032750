"""The completion journal: one appended, checksummed record per finished item.

A run's journal is one file. Each record is a 16-byte header (magic ``LSJ\\x01``, payload
length, CRC-32 of the payload) and a payload (kind, key, codec, body). Kinds: ``open`` (a run
started; JSON with the function's identity), ``done`` (the result, pickled, compressed with
:func:`lensing_ssc.core.io.compress` above 64 KiB when that pays) and ``failed`` (JSON: error
type, message, traceback, attempts).

Durability, at a cost that does not depend on how many items are already done:

- every record reaches the OS as soon as its item finishes, so a killed process loses
  nothing that finished (on Linux it is copied into a mapping of the file's end, with no
  system call; elsewhere one ``write``: see :mod:`._appender`);
- a daemon thread (``lensing_ssc-runner-journal``) fsyncs every ``commit_interval``
  seconds (group commit; stretched to 10 fsync durations on a slow filesystem, because each
  fsync stalls the writer briefly); :attr:`Journal.durable_seq` says how far the file is on stable
  storage, and the run reports a completion only once its record is below that mark, so a
  machine crash loses at most one commit window of unreported items.

On reload, a torn last record (the process died mid-write) is cut off, and so are the zeros
reserved after the last record by a run that did not close the file; a damaged record in
the middle is skipped by resynchronising on the next valid header, and counted. Reloading
builds an index (per item of the resuming run, the offset of its record), not a copy of the
results: they are read back when used (:mod:`._records`).

Two drivers never append to one journal at once: ``flock`` on ``<journal>.lock`` keeps
apart two of one host, and an owner lease, ``<journal>.owner`` (:mod:`._owner`), whose
heartbeat the commit thread renews, keeps apart drivers on hosts sharing the directory,
where ``flock`` may be node-local. A filesystem that refuses ``flock`` (``ENOSYS``,
``ENOLCK``, ``EOPNOTSUPP``: Lustre mounted ``noflock``) opens the journal all the same,
guarded by the lease alone, as the checkpoint store does.

This module opens a journal (locked, leased, checked, its earlier records indexed), runs
its commit thread and closes it. The record format and reading are in :mod:`._records`;
appending is in :mod:`._journal_appends`; what opening checks, and the errors naming a
journal, are in :mod:`._journal_checks`; scheduling is in :mod:`._engine`; keys are in
:mod:`._keys`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lensing_ssc.core.base.exceptions import CheckpointError
from lensing_ssc.core.io import fsync_directory
from lensing_ssc.processing.runner._appender import Appender, open_appender
from lensing_ssc.processing.runner._journal_appends import JournalAppends, encode_record
from lensing_ssc.processing.runner._journal_checks import (
    check_is_journal,
    check_same_function,
    io_error,
)
from lensing_ssc.processing.runner._owner import BEAT, OwnerLease, in_use_error, read_owner

# Also offered here, to code that takes a journal apart record by record.
from lensing_ssc.processing.runner._records import KIND_DONE as KIND_DONE
from lensing_ssc.processing.runner._records import KIND_OPEN, JournalContents, read_journal
from lensing_ssc.processing.runner._records import _records as _records

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, documented
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "JournalContents", "read_journal"]

logger = logging.getLogger("lensing_ssc.processing.runner")
_sync = getattr(os, "fdatasync", os.fsync)
_NO_FLOCK = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL})


class Journal(JournalAppends):
    """An open journal, appended to by one thread and fsynced by its own daemon thread.

    Use :meth:`open`; the constructor is internal. Thread-safety: :meth:`append` from one
    thread at a time (the run's scheduling thread); everything else from any thread.
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        appender: Appender,
        lock_fd: int | None,
        owner: OwnerLease,
        *,
        fsync: bool,
        commit_interval: float,
        compression: str,
    ) -> None:
        self.path = path
        self._fd = fd
        self._appender = appender
        self._lock_fd = lock_fd
        self._owner = owner
        self._next_beat = time.monotonic() + owner.beat
        self._fsync = fsync
        self._interval = commit_interval
        self._compression = compression
        self._written = 0
        self._durable = 0
        self.commit_interval = commit_interval
        self.last_sync_seconds = 0.0
        """How long the last fsync took (the cost of one synchronous :meth:`sync`)."""
        self._state_lock = threading.Lock()
        self._error = None
        self._listener: Callable[[], None] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        # The thread commits (with fsync) and renews the owner lease (always).
        self._thread = threading.Thread(
            target=self._commit_loop, name="lensing_ssc-runner-journal", daemon=True
        )
        self._thread.start()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        function: str,
        keys: Sequence[str] | None = None,
        resume: bool = True,
        fsync: bool = True,
        commit_interval: float = 0.2,
        compression: str = "auto",
        mapped: bool | None = None,
        owner_beat: float = BEAT,
        host: str | None = None,
    ) -> tuple[Journal, JournalContents]:
        """Lock and open ``path`` (creating it), reading what earlier runs recorded.

        Args:
            path: The journal file; parent directories are created.
            function: Identity of the run's function (see :func:`.keys.function_identity`).
            keys: The run's keys: earlier records are then indexed per key, in this order
                (``JournalContents.offsets``); ``None`` indexes them per recorded key.
            resume: Keep earlier records; ``False`` empties the journal first.
            fsync: Group-commit to stable storage; ``False`` trusts the OS page cache
                (survives a killed process, not a machine crash).
            commit_interval: Seconds between fsyncs, stretched to 10 times the last
                fsync's duration when the filesystem is slow.
            compression: Codec for results above 64 KiB (:func:`lensing_ssc.core.io.compress`).
            mapped: Copy records into a mapping of the file instead of writing each one
                (default: on Linux; see :mod:`._appender`).
            owner_beat: Seconds between renewals of the owner lease (:mod:`._owner`);
                another host takes the journal over three of them after this driver died.
            host: This driver's host name as the owner lease records it (default: the
                real one; tests give a fake one).

        A journal last written by another function (by :func:`.keys.same_function`) is
        refused, and so is a file that holds something other than a journal (an empty
        file is a new journal, and so is one holding only zeros; one whose first records
        are damaged is still a journal, recognised by a later valid record).

        Raises:
            CheckpointError: The journal is in use by another run (naming its host and
                pid), or cannot be read or written.
            ConfigError: ``path`` holds another function's journal (naming both) or a
                file that is not a journal (with ``resume=False`` too: it is never emptied).
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise io_error("create", path, exc) from exc
        lock_fd = cls._lock(path)
        try:
            owner = OwnerLease.acquire(path, beat=owner_beat, host=host)
        except CheckpointError:  # an OSError too: the journal is in use
            cls._unlock(lock_fd)
            raise
        except OSError as exc:
            cls._unlock(lock_fd)
            raise io_error("take the owner lease of", path, exc) from exc
        except BaseException:
            cls._unlock(lock_fd)
            raise
        try:
            contents, good_end = JournalContents(), 0
            existed = check_is_journal(path)
            if resume and existed:
                contents, good_end = read_journal(path, keys)
            if resume and contents.function is not None:
                check_same_function(path, contents.function, function)
            fd, appender = open_appender(path, good_end, mapped=mapped)
            if not existed:
                fsync_directory(path.parent)
        except CheckpointError:
            owner.release()
            cls._unlock(lock_fd)
            raise
        except OSError as exc:
            owner.release()
            cls._unlock(lock_fd)
            raise io_error("open", path, exc) from exc
        except BaseException:
            owner.release()
            cls._unlock(lock_fd)
            raise
        journal = cls(
            path,
            fd,
            appender,
            lock_fd,
            owner,
            fsync=fsync,
            commit_interval=commit_interval,
            compression=compression,
        )
        meta = {"function": function, "pid": os.getpid()}
        journal._append(encode_record(KIND_OPEN, "", "none", json.dumps(meta).encode("utf-8")))
        return journal, contents

    @staticmethod
    def _lock(path: Path) -> int | None:
        """``flock`` ``<journal>.lock``; ``None`` where the filesystem has no ``flock``."""
        if fcntl is None:  # pragma: no cover - Windows
            return None
        lock_path = path.with_name(path.name + ".lock")
        try:
            lock_fd = os.open(
                lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644
            )
        except OSError as exc:
            raise io_error("create the lock file of", path, exc) from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(lock_fd)
            holder = read_owner(path.with_name(path.name + ".owner"))
            raise in_use_error(path, holder) from exc
        except OSError as exc:
            os.close(lock_fd)
            if exc.errno in _NO_FLOCK:
                logger.info(
                    "task journal %s: the filesystem has no flock (%s); the owner lease "
                    "alone keeps other drivers out",
                    path,
                    exc.strerror or exc,
                )
                return None
            raise io_error("lock", path, exc) from exc
        return lock_fd

    @staticmethod
    def _unlock(lock_fd: int | None) -> None:
        if lock_fd is not None:
            os.close(lock_fd)  # closing the descriptor releases the flock

    @property
    def durable_seq(self) -> int:
        """Sequence number of the last record known to be on stable storage."""
        return self._durable

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` (from the journal thread) whenever ``durable_seq`` advances."""
        self._listener = listener

    def sync(self) -> None:
        """Make every record appended so far durable, now, in the calling thread.

        Raises:
            CheckpointError: fsync failed (here or in the journal thread).
        """
        if self._error is not None:
            raise io_error("sync", self.path, self._error) from self._error
        if self._closed or not self._fsync:
            return
        self._commit()
        if self._error is not None:
            raise io_error("sync", self.path, self._error) from self._error

    def _commit(self) -> None:
        target = self._written
        if target <= self._durable:
            return
        started = time.perf_counter()
        try:
            _sync(self._fd)
        except OSError as exc:
            self._error = exc
            return
        self.last_sync_seconds = time.perf_counter() - started
        with self._state_lock:
            self._durable = max(self._durable, target)
        listener = self._listener
        if listener is not None:
            listener()

    def _commit_loop(self) -> None:
        while not self._stop.is_set():
            # At most ~10 % of the time in fsync: each one stalls the writer a little, and a
            # slow shared filesystem should not be hammered.
            wait = max(self._interval, 10 * self.last_sync_seconds) if self._fsync else None
            until_beat = max(0.0, self._next_beat - time.monotonic())
            self._wake.wait(until_beat if wait is None else min(wait, until_beat))
            self._wake.clear()
            if self._fsync:
                self._commit()
            if time.monotonic() >= self._next_beat and not self._stop.is_set():
                self._renew_owner()

    def _renew_owner(self) -> None:
        self._next_beat = time.monotonic() + self._owner.beat
        try:
            kept = self._owner.renew()
        except OSError as exc:  # a passing network hiccup: the next beat tries again
            logger.warning("task journal %s: could not renew its owner lease: %s", self.path, exc)
            return
        if not kept:
            lost = self._owner.lost
            who = "" if lost is None else f": {lost.describe()}"
            self._error = self._error or OSError(
                errno.EBUSY, f"another driver took this journal over{who}"
            )

    def close(self) -> None:
        """Sync, stop the journal thread and release the file and its lock (idempotent)."""
        if self._closed:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._appender.finish()
            if self._fsync and self._error is None:
                self._commit()
        except OSError as exc:
            self._error = self._error or exc
        finally:
            self._closed = True
            os.close(self._fd)
            if self._owner.lost is None:
                self._owner.release()
            self._unlock(self._lock_fd)
        if self._error is not None:
            raise io_error("sync", self.path, self._error) from self._error

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
