"""Crash-safe file writes: a reader sees the old file or the new one, never a torn mix.

:func:`atomic_write` and :func:`atomic_open` write to a temporary file in the target's own
directory, flush it to disk (``fsync``), move it over the target with :func:`os.replace`
and then flush the directory, so the rename itself survives a power cut. If anything fails
before the rename, the target is untouched and the temporary file is removed. A process
killed outright (SIGKILL, the scheduler's time limit) cannot clean up after itself, so
temporary names carry the writer's host, pid and thread, and :func:`cleanup_temp_files`
removes the ones whose writer is gone.
:func:`atomic_open` hands out the temporary file itself, readable too with ``"w+b"``, so
writers that seek and read back (h5py, ``zipfile``) write straight to disk.

Big writes are streamed to disk as they go and a big replaced file is freed off the
caller's thread (see ``_STREAM_SLICE`` and ``_RELEASE_IN_BACKGROUND``), so a 1 GiB
checkpoint costs no more than a plain write and fsync of the same bytes.

This module does not lock: two writers of one target both succeed and the last rename wins.
Compression is in :mod:`._codecs`, checksums in :mod:`._hashing`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import psutil

from ._buffers import byte_view

__all__ = [
    "atomic_open",
    "atomic_write",
    "cleanup_temp_files",
    "fsync_directory",
    "is_temp_file",
    "temp_name_for",
]

PathLike = str | os.PathLike[str]

TEMP_SUFFIX = ".lssc-tmp"
_TEMP_NAME = re.compile(
    r"\.(?P<name>.*)~(?P<host>[A-Za-z0-9._-]+)~(?P<pid>\d+)~(?P<tid>\d+)~(?P<token>[0-9a-f]{8})"
    + re.escape(TEMP_SUFFIX),
    re.DOTALL,
)
_MAX_NAME_CHARS = 100  # keeps temp names under the usual 255-byte limit
_MAX_HOST_CHARS = 64
# Big writes go out in slices; after each, the kernel is asked to start writing the slice
# to disk and to drop the previous, already written one from the page cache. The final
# fsync then has little left to wait for, and a multi-GB checkpoint does not fill the job's
# (cgroup-charged) page cache with dirty pages.
_STREAM_SLICE = 64 << 20
_fadvise = getattr(os, "posix_fadvise", None)
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 0)
# Freeing the blocks of a replaced multi-GB file takes the kernel a noticeable time (about
# 0.2 s per GiB on ext4). Holding the old file open across the rename moves that work to
# the moment the last descriptor closes, which a short-lived background thread does.
# Windows cannot rename over an open file, so it frees in line.
_RELEASE_IN_BACKGROUND = 64 << 20
_DEFER_RELEASE = os.name != "nt"
_OPEN_FLAGS = os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
# atomic_open's modes: "wb" for a writer that only writes, "w+b" for one that reads back
# what it wrote (h5py needs a readable, seekable file: it rereads its metadata).
_ACCESS = {"wb": os.O_WRONLY, "w+b": os.O_RDWR}
_HOLD_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_HOLD_FLAGS |= getattr(os, "O_CLOEXEC", 0)
# Filesystems that cannot sync a directory say so with one of these; the rename is then as
# durable as that filesystem makes it, and failing the write would help nobody.
_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


@functools.cache
def _host_label() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:_MAX_HOST_CHARS]
    return host or "localhost"


def temp_name_for(path: PathLike) -> Path:
    """Return a fresh temporary path beside ``path``, naming this host, process and thread.

    The name is hidden (leading dot), unique per call, and recognised by
    :func:`is_temp_file`; :func:`cleanup_temp_files` reads the host and pid back from it.

    Args:
        path: The file that will eventually be replaced.

    Example:
        >>> temp_name_for("run/state.ckpt").name  # doctest: +SKIP
        '.state.ckpt~node042~81234~81234~9f2c01ab.lssc-tmp'
    """
    target = Path(path)
    name = target.name[:_MAX_NAME_CHARS]
    pid, tid, token = os.getpid(), threading.get_native_id(), secrets.token_hex(4)
    return target.parent / f".{name}~{_host_label()}~{pid}~{tid}~{token}{TEMP_SUFFIX}"


def is_temp_file(path: PathLike) -> bool:
    """Tell whether ``path`` is a temporary file made by :func:`temp_name_for`."""
    return _TEMP_NAME.fullmatch(Path(path).name) is not None


def fsync_directory(path: PathLike) -> None:
    """Flush a directory's entries (new names, renames, deletions) to disk.

    A no-op on Windows, which cannot open directories and journals renames itself.
    Filesystems that refuse to sync directories (``EINVAL``/``ENOTSUP``) are tolerated.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NotADirectoryError: ``path`` is not a directory.
    """
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _fsync_file(fd: int) -> None:
    if sys.platform == "darwin":  # pragma: no cover - macOS only: fsync stops at the drive cache
        import fcntl

        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fsync(fd)


def _close_quietly(fd: int) -> None:
    # A failed close of a read-only descriptor loses nothing; the kernel has released it.
    with contextlib.suppress(OSError):
        os.close(fd)


def _release_later(fd: int) -> None:
    """Close ``fd`` (the last hold on a replaced file) in a daemon thread."""
    threading.Thread(
        target=_close_quietly, args=(fd,), name="lensing_ssc-io-release", daemon=True
    ).start()


class _PendingFile:
    """A temporary file beside ``target`` that is either committed by rename or discarded."""

    __slots__ = (
        "advised",
        "fd",
        "fsync",
        "old_size",
        "position",
        "previous",
        "sync_directory",
        "target",
        "temp",
    )

    def __init__(
        self, target: Path, *, fsync: bool, sync_directory: bool = True, access: int = os.O_WRONLY
    ) -> None:
        self.target = target
        self.fsync = fsync
        self.sync_directory = sync_directory
        self.position = 0  # bytes written so far
        self.advised = 0  # start of the bytes not yet handed to writeback
        self.previous = 0  # start of the slice handed over last time
        self.temp = temp_name_for(target)
        try:
            self.fd = os.open(self.temp, _OPEN_FLAGS | access, 0o666)
        except FileNotFoundError as exc:
            parent = target.parent
            if parent.is_dir():
                raise
            raise FileNotFoundError(
                errno.ENOENT,
                f"cannot write {target}: directory {parent} does not exist "
                "(create it first, e.g. Path(...).mkdir(parents=True, exist_ok=True))",
                str(parent),
            ) from exc
        try:
            # lstat: a link planted at the target is replaced by the rename, never read.
            old = os.lstat(target)
        except OSError:
            self.old_size = 0
        else:
            regular = stat.S_ISREG(old.st_mode)
            self.old_size = old.st_size if regular else 0
            if regular and hasattr(os, "fchmod"):  # keep the permissions of the file replaced
                os.fchmod(self.fd, old.st_mode & 0o7777)

    def write(self, data: Any) -> int:
        view = byte_view(data)
        total = view.nbytes
        done = 0
        while done < total:
            written = os.write(self.fd, view[done : done + _STREAM_SLICE])
            if written == 0:
                raise OSError(errno.EIO, f"write to {self.temp} made no progress", str(self.temp))
            done += written
            self.position += written
            if self.fsync and self.position - self.advised >= _STREAM_SLICE:
                self._stream_out()
        return total

    def _stream_out(self) -> None:
        if _fadvise is None:  # pragma: no cover - macOS has no posix_fadvise
            return
        # One call starts writeback of the new slice and drops the previous one, whose
        # writeback has had a slice's worth of time to finish.
        _fadvise(self.fd, self.previous, self.position - self.previous, _DONTNEED)
        self.previous, self.advised = self.advised, self.position

    def commit(self) -> None:
        if self.fsync:
            _fsync_file(self.fd)
        fd, self.fd = self.fd, -1
        os.close(fd)
        old_fd = self._hold_old_file()
        try:
            os.replace(self.temp, self.target)
        except BaseException:
            if old_fd >= 0:
                os.close(old_fd)
            raise
        if old_fd >= 0:
            _release_later(old_fd)
        if self.fsync and self.sync_directory:
            fsync_directory(self.target.parent)

    def _hold_old_file(self) -> int:
        """Open a big file about to be replaced, so that freeing it can happen off-thread."""
        if not _DEFER_RELEASE or self.old_size < _RELEASE_IN_BACKGROUND:
            return -1
        try:
            return os.open(self.target, _HOLD_FLAGS)
        except OSError:  # gone, unreadable or swapped for a link: released by the rename
            return -1

    def discard(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


def _chunks_of(data: Any) -> Iterable[Any]:
    if isinstance(data, (bytes, bytearray, memoryview, np.ndarray)):
        return (data,)
    if isinstance(data, str):
        raise TypeError("atomic_write needs bytes, got str; encode it first (text.encode())")
    try:
        memoryview(data).release()
    except TypeError:
        pass
    else:
        return (data,)
    if isinstance(data, Iterable):
        return data
    raise TypeError(
        "atomic_write needs bytes-like data or an iterable of bytes-like chunks, "
        f"got {type(data).__name__}"
    )


def atomic_write(
    path: PathLike, data: Any, *, fsync: bool = True, sync_directory: bool = True
) -> int:
    """Replace the file at ``path`` with ``data`` so that no reader ever sees a partial file.

    Steps: write a temporary file in the same directory, ``fsync`` it, close it,
    ``os.replace`` it over ``path``, ``fsync`` the directory. If any step before the rename
    fails (or the process is interrupted), ``path`` keeps its old content and the
    temporary file is removed. If only the final directory ``fsync`` fails, the new content
    is already in place but may not survive a power cut; the error is raised.

    Args:
        path: Target file; its directory must exist. An existing file's permissions are kept.
        data: A bytes-like object (bytes, bytearray, memoryview, numpy array) or an iterable
            of them, e.g. ``[header, memoryview(array)]``. Chunks go to the file one after
            the other without being joined; contiguous arrays are not copied.
        fsync: Flush file and directory to disk. ``False`` keeps atomicity against crashes
            of this process but not against power loss or a kernel crash.
        sync_directory: With ``fsync``, also flush the directory. ``False`` leaves that to
            the caller, who writes several files into one directory and then calls
            :func:`fsync_directory` once.

    Returns:
        The number of bytes written.

    Raises:
        FileNotFoundError: The directory of ``path`` does not exist.
        TypeError: ``data`` (or a chunk of it) is not bytes-like.

    Example:
        >>> n = atomic_write(tmp / "state.bin", [b"LSSC1", np.arange(4.0)])  # doctest: +SKIP
    """
    chunks = _chunks_of(data)
    pending = _PendingFile(Path(path), fsync=fsync, sync_directory=sync_directory)
    try:
        written = sum(pending.write(chunk) for chunk in chunks)
        pending.commit()
    except BaseException:
        pending.discard()
        raise
    return written


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, fsync: bool = True) -> Iterator[BinaryIO]:
    """Open a binary file whose content replaces ``path`` only when the block exits cleanly.

    The same steps and guarantees as :func:`atomic_write`; on an exception inside the block
    the temporary file is removed, ``path`` is untouched and the exception propagates.
    The file is the temporary file itself, so a writer that seeks and reads back (h5py,
    ``zipfile``) writes straight to disk instead of building the file in memory first.

    Args:
        path: Target file; its directory must exist. An existing file's permissions are kept.
        mode: ``"wb"`` (write only) or ``"w+b"`` (read and write, seekable: what
            ``h5py.File(fh, "w")`` needs). The file starts empty either way.
        fsync: As for :func:`atomic_write`.

    Raises:
        ValueError: ``mode`` is neither ``"wb"`` nor ``"w+b"``.
        FileNotFoundError: The directory of ``path`` does not exist.

    Example:
        >>> with atomic_open(tmp / "table.txt") as fh:  # doctest: +SKIP
        ...     fh.write(b"a,b\\n1,2\\n")
        >>> with atomic_open(tmp / "data.h5", "w+b") as fh:  # doctest: +SKIP
        ...     with h5py.File(fh, "w") as f:
        ...         f["x"] = np.arange(3)
    """
    access = _ACCESS.get(mode)
    if access is None:
        raise ValueError(f"atomic_open writes a new file: mode must be 'wb' or 'w+b', got {mode!r}")
    pending = _PendingFile(Path(path), fsync=fsync, access=access)
    try:
        with cast(BinaryIO, open(pending.fd, mode, closefd=False)) as fh:
            yield fh
        pending.commit()
    except BaseException:
        pending.discard()
        raise


def _writer_is_gone(host: str, pid: int, mtime: float) -> bool:
    """Whether the process that named a temp file is certainly dead (on this host)."""
    if host != _host_label() or pid == os.getpid():
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        # A process started after the file was last written cannot be its writer: the pid
        # was reused. One second of slack absorbs the coarse start-time clock.
        return proc.create_time() > mtime + 1.0
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def cleanup_temp_files(
    directory: PathLike | int, *, older_than: float = 0.0, only_dead_local_pids: bool = True
) -> list[Path]:
    """Remove temporary files left in ``directory`` by writers that were killed mid-write.

    Only regular files with names made by :func:`temp_name_for` are considered; targets,
    links and anything else are never touched. The directory itself is scanned, not its
    sub-directories.

    Args:
        directory: The directory to clean, or a descriptor open on it: names are then
            resolved in that very directory, even if its path is meanwhile replaced by a
            symbolic link (returned paths are then bare names).
        older_than: Only remove temporary files not modified for this many seconds.
        only_dead_local_pids: Keep a temporary file unless its writer ran on this host and
            that process no longer exists (a reused pid counts as gone). Set ``False`` to
            remove every temporary file old enough, e.g. from other nodes of a finished job.

    Returns:
        The removed paths, sorted.

    Raises:
        ValueError: ``older_than`` is negative.
        FileNotFoundError: ``directory`` does not exist.
    """
    if not older_than >= 0:
        raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")
    now = time.time()
    removed: list[Path] = []
    dir_fd = directory if isinstance(directory, int) else None
    with os.scandir(directory) as entries:
        for entry in entries:
            match = _TEMP_NAME.fullmatch(entry.name)
            if match is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue
            if now - mtime < older_than:
                continue
            if only_dead_local_pids and not _writer_is_gone(
                match["host"], int(match["pid"]), mtime
            ):
                continue
            try:
                os.unlink(entry.name if dir_fd is not None else entry.path, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return sorted(removed)
