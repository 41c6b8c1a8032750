"""How journal records reach the file: copied into a mapping of its end (Linux), else written.

A finished item's record must reach the operating system at once, so that a killed process
loses nothing that finished; :mod:`._journal` makes it durable later, by group commit.

Writing each record with ``os.write`` costs a system call per item and, worse, releases the
GIL on every item. A background thread waiting for the GIL (the journal's committer, a
resource monitor, a log writer) is woken by each release, loses the race for it to the
running loop, and sleeps again, item after item: every write then also pays for waking it.
Measured on 2 cores with 1 ms items under a ``ManagerContext``, this was more than half of
the runner's cost per item.

- :class:`MappedAppender` (Linux) copies each record into a shared, writable mapping of a
  window at the end of the file: no system call and no GIL release per record. The bytes
  are in the page cache exactly as after a ``write``, so a SIGKILL loses nothing, and
  ``fdatasync`` on the descriptor flushes them (on Linux it covers pages dirtied through
  shared mappings). Each window's blocks are reserved with ``posix_fallocate``: a full disk
  fails the append that needs a new window (``OSError``), never a page fault (SIGBUS).
  While the journal is open, the file runs on past its last record with zeros, which
  :func:`.journal.read_journal` skips and :meth:`MappedAppender.finish` cuts off. A record
  too large for the window is written with ``pwrite``; a filesystem that cannot map or
  reserve gets ``pwrite`` for every record.
- :class:`WriteAppender` (other systems) writes each record with one ``write`` on an
  ``O_APPEND`` descriptor.

Use :func:`open_appender`.
"""

from __future__ import annotations

import errno
import mmap
import os
import sys
from typing import Protocol

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""A journal planted as a symlink in a shared run directory is refused, never followed."""

__all__ = ["Appender", "MappedAppender", "WriteAppender", "open_appender"]

WINDOW_BYTES = 1 << 20
"""Bytes mapped at the end of the file at a time (and so reserved on disk ahead of use)."""

_PAGE = mmap.ALLOCATIONGRANULARITY
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_writev = getattr(os, "writev", None)  # POSIX; elsewhere one joined write


class Appender(Protocol):
    """Puts records at the end of a journal file; ``end`` is the offset after the last one."""

    end: int

    def append(self, data: bytes) -> None:
        """Add one record (raises ``OSError`` when the file cannot take it)."""

    def append_parts(self, parts: list[bytes], total: int) -> None:
        """Add one record given in parts of ``total`` bytes."""

    def finish(self) -> None:
        """Stop appending; the file then ends exactly after the last record."""


def open_appender(
    path: os.PathLike[str] | str,
    end: int,
    *,
    mapped: bool | None = None,
) -> tuple[int, Appender]:
    """Open ``path`` for appending after its first ``end`` bytes (the rest is cut off).

    Args:
        path: The journal file (created if missing).
        end: Bytes to keep.
        mapped: Use :class:`MappedAppender` (default: on Linux).

    Returns:
        The descriptor (for fsync; the caller closes it after :meth:`Appender.finish`) and
        the appender.
    """
    if mapped is None:
        mapped = sys.platform.startswith("linux")
    if mapped:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        appender: Appender = MappedAppender(fd, end)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW, 0o644)
        appender = WriteAppender(fd, end)
    try:
        os.ftruncate(fd, end)
    except BaseException:
        os.close(fd)
        raise
    return fd, appender


class WriteAppender:
    """One ``write`` per record on an ``O_APPEND`` descriptor."""

    def __init__(self, fd: int, end: int) -> None:
        self._fd = fd
        self.end = end

    def append(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        if written != len(data):
            _finish_write(self._fd, data, written)
        self.end += len(data)

    def append_parts(self, parts: list[bytes], total: int) -> None:
        written = (
            _writev(self._fd, parts) if _writev is not None else os.write(self._fd, b"".join(parts))
        )
        if written < total:
            _finish_write(self._fd, b"".join(parts), written)
        self.end += total

    def finish(self) -> None:
        """Nothing to undo: the file already ends after the last record."""


class MappedAppender:
    """Records copied into a shared mapping of the file's end; ``pwrite`` when that cannot be."""

    def __init__(self, fd: int, end: int) -> None:
        self._fd = fd
        self.end = end
        self._map: mmap.mmap | None = None
        self._base = 0  # file offset of the mapping's first byte
        self._limit = 0  # file offset just past the mapping
        self._mappable = True

    def append(self, data: bytes) -> None:
        end = self.end
        size = len(data)
        if end + size <= self._limit:  # the common case: a copy, no system call
            at = end - self._base
            self._map[at : at + size] = data  # type: ignore[index]
            self.end = end + size
            return
        self._append_slow(data)

    def append_parts(self, parts: list[bytes], total: int) -> None:
        self.append(b"".join(parts) if len(parts) > 1 else parts[0])

    def _append_slow(self, data: bytes) -> None:
        size = len(data)
        if self._mappable and size < WINDOW_BYTES:
            self._remap(size)
        if self._mappable and self.end + size <= self._limit:
            self.append(data)
            return
        # Too large for a window, or a filesystem that cannot map: write it.
        view = memoryview(data)
        at = self.end
        while view:
            written = os.pwrite(self._fd, view, at)
            view = view[written:]
            at += written
        self.end = at

    def _remap(self, size: int) -> None:
        """Map a new window starting at the page holding ``end``, reserved on disk."""
        self._unmap()
        base = self.end - self.end % _PAGE
        limit = base + max(WINDOW_BYTES, -(-(self.end - base + size) // _PAGE) * _PAGE)
        try:
            os.posix_fallocate(self._fd, self.end, limit - self.end)
        except OSError as exc:
            if exc.errno in _FULL:
                raise
            self._mappable = False  # no reservation here: pwrite, whose errors are plain
            return
        try:
            self._map = mmap.mmap(
                self._fd,
                limit - base,
                mmap.MAP_SHARED,
                mmap.PROT_READ | mmap.PROT_WRITE,
                offset=base,
            )
        except OSError:
            self._mappable = False  # e.g. a filesystem without shared writable mappings
            return
        self._base, self._limit = base, limit

    def _unmap(self) -> None:
        mapping, self._map = self._map, None
        self._base = self._limit = 0
        if mapping is not None:
            mapping.close()  # dirty pages stay in the page cache; fsync still flushes them

    def finish(self) -> None:
        """Unmap the window and cut the reserved zeros after the last record."""
        self._unmap()
        os.ftruncate(self._fd, self.end)


def _finish_write(fd: int, data: bytes, written: int) -> None:
    """Complete a short write of ``data`` of which ``written`` bytes went out."""
    rest = memoryview(data)[written:]
    while rest:
        rest = rest[os.write(fd, rest) :]
