"""A damaged cache index: how it is recognised, and how it is replaced by an empty one.

SQLite reports a damaged database file as ``SQLITE_CORRUPT`` ("database disk image is
malformed") or ``SQLITE_NOTADB`` ("file is not a database"), when it is opened or when a
damaged page is first read (:func:`is_index_damaged`). A cache holds nothing that cannot be
computed again, so a damaged index is not an error to pass on to a run: it is replaced by an
empty one, and the value files go with it, since no entry refers to them any more
(:func:`replace_index`). Entries that were still readable are lost; nothing wrong is ever
read, and the run computes what it needs again.

Several processes share an index and each may meet the damage. The replacement runs under a
lock file beside the index (``index.sqlite.lock``, ``flock``, opened ``O_NOFOLLOW``) and
replaces only the file that was found damaged, known by its device and inode: a process that
comes second finds a new file there and simply opens it. Processes still connected to the
old file keep reading it until they meet the damage themselves. Value files are removed
whole (``*.val``); temporary files of live writers are left to them (a value file renamed
into place after the removal is an orphan, removed by the next sweep).

Who replaces an index when is :mod:`._connection`'s business (once per process, then the
manager goes on without its disk tier, :mod:`._manager`); ``lensing-ssc cache clean``
replaces one on request (:class:`~._directory.CacheDirectory`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileIdentity", "file_identity", "is_index_damaged", "replace_index"]

FileIdentity = tuple[int, int]
"""A file's device and inode: which file a path named when it was read."""

_DAMAGED_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
_DAMAGED_MESSAGES = ("database disk image is malformed", "file is not a database")
_INDEX_FILES = ("", "-wal", "-shm", "-journal")
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def is_index_damaged(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, says the SQLite file is damaged."""
    while exc is not None:
        if isinstance(exc, sqlite3.DatabaseError):
            code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
            if code is not None:
                return code & 0xFF in _DAMAGED_CODES
            return str(exc) in _DAMAGED_MESSAGES
        exc = exc.__cause__
    return False


def file_identity(path: Path) -> FileIdentity | None:
    """The device and inode of ``path``, or ``None`` if there is no such file."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold ``path`` locked (``flock``) while replacing; without locks, go on unlocked."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, _LOCK_FLAGS, 0o666)
    try:
        with contextlib.suppress(OSError):  # a filesystem without flock: nothing to share
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def replace_index(index: Path, values: Path, damaged: FileIdentity | None) -> tuple[int, int]:
    """Remove the index file ``damaged`` names, its journals and every value file.

    Args:
        index: The index file (``index.sqlite``); the caller opens a new one afterwards.
        values: The directory of value files.
        damaged: The identity of the index file found damaged; the removal happens only
            if ``index`` is still that file (another process may have replaced it already).
            ``None``: whatever file is there.

    Returns:
        The value files removed and their bytes (``(0, 0)`` when another process had
        replaced the index already).

    Raises:
        OSError: The lock file or a file cannot be removed (a read-only directory, say).
    """
    with _exclusive(index.with_name(index.name + ".lock")):
        if damaged is not None and file_identity(index) != damaged:
            return 0, 0
        for suffix in _INDEX_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(index.with_name(index.name + suffix))
        files = size = 0
        for path in values.glob("*/*.val"):
            with contextlib.suppress(FileNotFoundError):
                length = path.stat().st_size
                path.unlink()
                files += 1
                size += length
        return files, size
