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

The record format and reading are in :mod:`._records`; scheduling is in :mod:`._engine`;
keys are in :mod:`._keys`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import stat
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import CheckpointError, ConfigError
from lensing_ssc.core.io import compress, fsync_directory
from lensing_ssc.processing.runner._appender import Appender, open_appender
from lensing_ssc.processing.runner._keys import same_function
from lensing_ssc.processing.runner._owner import BEAT, OwnerLease, in_use_error, read_owner
from lensing_ssc.processing.runner._records import (
    _HEAD,
    _HEADER,
    _JOIN_BELOW,
    KIND_DONE,
    KIND_FAILED,
    KIND_OPEN,
    MAGIC,
    JournalContents,
    read_journal,
)
from lensing_ssc.processing.runner._records import _records as _records

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, documented
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "JournalContents", "read_journal"]

logger = logging.getLogger("lensing_ssc.processing.runner")
COMPRESS_ABOVE = 64 * 1024
_ZERO_BLOCK = 64 * 1024
_sync = getattr(os, "fdatasync", os.fsync)


def _encode(kind: int, key: str, codec: str, body: bytes) -> tuple[list[bytes], int]:
    """The parts of one record, ready for one write, and their total length."""
    key_bytes = key.encode("utf-8")
    codec_bytes = codec.encode("ascii")
    head = _HEAD.pack(kind, len(codec_bytes), len(key_bytes)) + key_bytes + codec_bytes
    length = len(head) + len(body)
    header = _HEADER.pack(MAGIC, length, zlib.crc32(body, zlib.crc32(head)))
    if len(body) < _JOIN_BELOW:  # one small buffer: cheaper than a gather write
        return [header + head + body], _HEADER.size + length
    return [header + head, body], _HEADER.size + length


_NO_FLOCK = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL})
_HINTS = {
    errno.ENOENT: "the directory does not exist (or was removed): create it or fix the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: fix the path",
    errno.EACCES: "the directory or file is not writable by this user",
    errno.EPERM: "the directory or file is not writable by this user",
    errno.EROFS: "the filesystem is read-only: put the journal on a writable one",
    errno.ENOSPC: "the disk is full: free space, then run again (finished items are kept)",
    errno.EDQUOT: "the disk quota is exhausted: free space, then run again",
    errno.EBUSY: "another driver took this journal over (its heartbeat looked stale): stop "
    "one of the two runs; the one left continues from the journal",
}


def _io_error(action: str, path: Path, exc: OSError) -> CheckpointError:
    hint = _HINTS.get(
        exc.errno or 0, "check that the directory is writable and the filesystem is healthy"
    )
    return CheckpointError(
        f"could not {action} the task journal {str(path)!r}: {exc.strerror or exc}",
        value=str(path),
        hint=hint,
    )


def _check_is_journal(path: Path) -> bool:
    """Whether ``path`` exists; raises ``ConfigError`` when it holds no journal.

    A file is a journal when it is empty, starts with a record's magic (or a part of it:
    a first record torn by a crash), holds only zeros (reserved by a run killed before its
    first record), or holds at least one valid record (its start damaged).
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"journal path {str(path)!r} is not a regular file",
            value=str(path),
            field="journal",
            hint="give the path of a file, e.g. tasks/power.journal",
        )
    with open(path, "rb") as file:
        head = file.read(len(MAGIC))
        if not head or MAGIC.startswith(head):
            return True
        while head and not head.strip(b"\0"):
            head = file.read(_ZERO_BLOCK)
        if not head:
            return True
    if read_journal(path)[0].records:
        return True
    raise ConfigError(
        f"{str(path)!r} is not a task journal: it holds other data, which using it as the "
        "journal would erase",
        value=str(path),
        field="journal",
        hint="give a journal path of its own (e.g. tasks/power.journal), or move the file away",
    )


def _check_same_function(path: Path, recorded: str, function: str) -> None:
    """Refuse a journal whose results were computed by another function."""
    if same_function(recorded, function):
        return
    raise ConfigError(
        f"task journal {str(path)!r} holds results of {recorded}, not of {function}; "
        "reusing them would return another function's results",
        value=recorded,
        field="journal",
        hint="give this function a journal of its own (in ManagerContext.map, another name=), "
        "or pass resume=False to start this journal afresh",
    )


class Journal:
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
        self._error: OSError | None = None
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
            raise _io_error("create", path, exc) from exc
        lock_fd = cls._lock(path)
        try:
            owner = OwnerLease.acquire(path, beat=owner_beat, host=host)
        except CheckpointError:  # an OSError too: the journal is in use
            cls._unlock(lock_fd)
            raise
        except OSError as exc:
            cls._unlock(lock_fd)
            raise _io_error("take the owner lease of", path, exc) from exc
        except BaseException:
            cls._unlock(lock_fd)
            raise
        try:
            contents, good_end = JournalContents(), 0
            existed = _check_is_journal(path)
            if resume and existed:
                contents, good_end = read_journal(path, keys)
            if resume and contents.function is not None:
                _check_same_function(path, contents.function, function)
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
            raise _io_error("open", path, exc) from exc
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
        journal._append(_encode(KIND_OPEN, "", "none", json.dumps(meta).encode("utf-8")))
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
            raise _io_error("create the lock file of", path, exc) from exc
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
            raise _io_error("lock", path, exc) from exc
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

    def append_done(self, key: str, value: Any) -> int:
        """Record ``key`` as done with ``value``; returns the record's sequence number.

        Raises:
            pickle.PicklingError, TypeError, AttributeError: ``value`` cannot be pickled
                (nothing is written).
            CheckpointError: The write failed.
        """
        body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if len(body) < _JOIN_BELOW:  # the common case, kept short: it runs once per item
            key_bytes = key.encode("utf-8")
            head = _HEAD.pack(KIND_DONE, 4, len(key_bytes)) + key_bytes + b"none" + body
            return self._append_one(_HEADER.pack(MAGIC, len(head), zlib.crc32(head)) + head)
        codec = "none"
        if len(body) > COMPRESS_ABOVE and self._compression != "none":
            codec, body = compress(body, self._compression)
        return self._append(_encode(KIND_DONE, key, codec, body))

    def append_failed(self, key: str, failure: dict[str, Any]) -> int:
        """Record ``key`` as failed; returns the record's sequence number."""
        return self._append(_encode(KIND_FAILED, key, "none", json.dumps(failure).encode()))

    def _append(self, record: tuple[list[bytes], int]) -> int:
        parts, total = record
        if len(parts) == 1:
            return self._append_one(parts[0])
        if self._error is not None:
            raise _io_error("sync", self.path, self._error) from self._error
        try:
            self._appender.append_parts(parts, total)
        except OSError as exc:
            raise _io_error("append to", self.path, exc) from exc
        self._written += 1
        if not self._fsync:
            self._durable = self._written
        return self._written

    def _append_one(self, data: bytes) -> int:
        # The once-per-item path, written out rather than shared with _append: routing
        # both through one helper measured 160 ns more per record (1.33 -> 1.49 us).
        if self._error is not None:
            raise _io_error("sync", self.path, self._error) from self._error
        try:
            self._appender.append(data)
        except OSError as exc:
            raise _io_error("append to", self.path, exc) from exc
        self._written += 1
        if not self._fsync:
            self._durable = self._written
        return self._written

    def sync(self) -> None:
        """Make every record appended so far durable, now, in the calling thread.

        Raises:
            CheckpointError: fsync failed (here or in the journal thread).
        """
        if self._error is not None:
            raise _io_error("sync", self.path, self._error) from self._error
        if self._closed or not self._fsync:
            return
        self._commit()
        if self._error is not None:
            raise _io_error("sync", self.path, self._error) from self._error

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
            raise _io_error("sync", self.path, self._error) from self._error

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
