"""Where formatted lines go: the log file (with rotation and archival) and the console.

A sink takes a batch of complete records (``list[bytes]``, each ending in a newline) from
the writer thread and writes it; errors propagate to the writer, which reports them once. A
sink that took some records of the batch whole before failing says how many
(:class:`PartialWriteError`), so the writer counts only the others as dropped.

:class:`RotatingFileSink` writes through an unbuffered file, one ``write`` per batch, so a
crash or a ``fork`` never leaves half a batch in a user-space buffer. A write cut short (a
full disk, the file-size limit) is truncated back to the last whole record; where even that
fails, the next record starts on a new line, so the file stays JSON lines (or one record a
line) whatever the disk does. Before each batch the sink compares the path's device and
inode with its open file's, as :class:`logging.handlers.WatchedFileHandler` does (one
``stat`` a batch of up to 2048 records: 2 µs), and opens the path again when the file was
deleted, moved away or replaced, creating a deleted directory again; when it cannot, the
batch fails and the writer says once that records are lost.

When the next record would take the file past ``max_bytes``, the file is renamed to
``<name>.<UTC time>[-n]`` (e.g. ``run.log.20260509T175525.123456Z``) and a new one is
started; a record never straddles two files. Rotated files never move again, so the
:class:`Archiver` thread (``lensing_ssc-log-archiver``) gzips them (``...Z.gz``) and
prunes them by count (``backup_count`` newest kept) and age (``retention_days``) off the
writer's path, and finishes leftovers of an earlier run at start-up.

The queue and writer thread are :mod:`._writer`; records from worker processes arrive
through :mod:`._transport`.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from io import FileIO
from pathlib import Path
from typing import Protocol

__all__ = [
    "Archiver",
    "ConsoleSink",
    "PartialWriteError",
    "RotatingFileSink",
    "Sink",
    "list_backups",
]

ARCHIVER_THREAD_NAME = "lensing_ssc-log-archiver"
_CHUNK = 1 << 20


class PartialWriteError(Exception):
    """A sink's write failed after the batch's first ``written`` records reached it whole.

    The error that stopped it is ``__cause__``.
    """

    def __init__(self, written: int) -> None:
        super().__init__(f"the write failed after {written} whole records")
        self.written = written


class Sink(Protocol):
    """A destination for formatted records."""

    label: str

    def write(self, lines: list[bytes]) -> None:
        """Write every line, or raise (:class:`PartialWriteError` when some were written)."""
        ...

    def close(self) -> None: ...


class ConsoleSink:
    """Writes to whatever ``sys.stderr`` is at the time (so redirections are honoured)."""

    label = "the console (stderr)"

    def write(self, lines: list[bytes]) -> None:
        stream = sys.stderr
        if stream is None:  # pythonw and some daemons run without a stderr
            return
        stream.write(b"".join(lines).decode("utf-8", "replace"))
        stream.flush()

    def close(self) -> None:
        """Nothing to release: the stream belongs to the interpreter."""


def _backup_pattern(base: Path) -> re.Pattern[str]:
    return re.compile(re.escape(base.name) + r"\.(\d{8}T\d{6}\.\d{6}Z)(?:-(\d+))?(\.gz)?$")


def list_backups(base: Path) -> list[Path]:
    """Rotated files of ``base`` (raw and gzipped), oldest first.

    Example:
        >>> list_backups(Path("runs/x/logs/lensing_ssc.log"))  # doctest: +SKIP
        [PosixPath('runs/x/logs/lensing_ssc.log.20260509T175525.123456Z.gz')]
    """
    pattern = _backup_pattern(base)
    found: list[tuple[tuple[str, int], Path]] = []
    try:
        names = os.listdir(base.parent)
    except (FileNotFoundError, NotADirectoryError):  # the directory was deleted, or replaced
        return []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append(((match[1], int(match[2] or 0)), base.parent / name))
    found.sort(key=lambda item: (item[0], item[1].name.endswith(".gz")))
    return [path for _, path in found]


class Archiver:
    """Compresses rotated files and prunes old ones on its own thread.

    Args:
        base: The live log file.
        compress: Gzip rotated files.
        backup_count: Rotated files to keep (newest); ``None`` keeps all.
        retention_days: Delete rotated files older than this; ``None`` keeps them.
        report: Called with ``(key, exception)`` when a file operation fails.
    """

    def __init__(
        self,
        base: Path,
        *,
        compress: bool,
        backup_count: int | None,
        retention_days: float | None,
        report: Callable[[str, BaseException], None],
    ) -> None:
        self._base = base
        self._compress = compress
        self._backup_count = backup_count
        self._retention_s = None if retention_days is None else retention_days * 86_400.0
        self._report = report
        self._pending: deque[Path] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.compressed = 0

    def start(self) -> None:
        """Queue leftovers of an earlier run, then start the thread."""
        for stale in self._base.parent.glob(self._base.name + ".*.gz.tmp"):
            stale.unlink(missing_ok=True)
        if self._compress:
            self._pending.extend(p for p in list_backups(self._base) if p.suffix != ".gz")
        self._thread = threading.Thread(target=self._run, name=ARCHIVER_THREAD_NAME, daemon=True)
        self._thread.start()
        self._wake.set()

    def submit(self, rotated: Path) -> None:
        """Hand over a freshly rotated file."""
        self._pending.append(rotated)
        self._wake.set()

    def _run(self) -> None:
        # Without a retention limit there is nothing to do until a rotation wakes us.
        interval = None if self._retention_s is None else min(self._retention_s / 10, 3600.0)
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            self.process()

    def process(self) -> None:
        """Compress everything pending, then prune (also called by ``close``)."""
        while self._pending:
            path = self._pending.popleft()
            if self._compress:
                self._gzip(path)
        try:
            self._prune()
        except OSError as exc:  # the directory cannot be listed: say so, try the next round
            self._report("list rotated files", exc)

    def _gzip(self, path: Path) -> None:
        target = path.with_name(path.name + ".gz")
        tmp = path.with_name(path.name + ".gz.tmp")
        try:
            stat = path.stat()
            with path.open("rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
            os.utime(tmp, (stat.st_atime, stat.st_mtime))
            os.replace(tmp, target)
            path.unlink()
            self.compressed += 1
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)  # pruned or removed by hand meanwhile
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._report(f"compress {path.name}", exc)

    def _prune(self) -> None:
        backups = list_backups(self._base)
        doomed: list[Path] = []
        if self._backup_count is not None and len(backups) > self._backup_count:
            doomed.extend(backups[: len(backups) - self._backup_count])
        if self._retention_s is not None:
            cutoff = time.time() - self._retention_s
            for path in backups:
                try:
                    if path not in doomed and path.stat().st_mtime < cutoff:
                        doomed.append(path)
                except FileNotFoundError:
                    continue
        for path in doomed:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._report(f"delete {path.name}", exc)

    def close(self) -> None:
        """Stop the thread, then finish pending work on the calling thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.process()


class RotatingFileSink:
    """Appends batches to ``path``, rotating at ``max_bytes`` (``None``: never).

    Raises:
        OSError: at construction when the file cannot be created or opened for append.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int | None,
        archiver: Archiver | None,
    ) -> None:
        self.path = path
        self.label = f"the log file {str(path)!r}"
        self._name = os.fspath(path)
        self._max_bytes = max_bytes
        self._archiver = archiver
        self._file: FileIO | None = None
        self._identity = (0, 0)
        self._size = 0
        #: A torn record that could not be cut off ends the file: start the next on a new line.
        self._torn = False
        self.rotations = 0
        self._open()

    def _open(self) -> FileIO:
        """Open ``path`` for appending, creating its directory (again) if need be."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self._name, flags, 0o644)  # a planted symlink is refused, not followed
        file = open(fd, "ab", buffering=0, closefd=True)  # noqa: SIM115 - kept for the run
        stat = os.fstat(file.fileno())
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity:
            self._torn = False  # a new file; the same one (a failed rotation) keeps its end
        self._file, self._identity, self._size = file, identity, stat.st_size
        return file

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _follow_path(self) -> FileIO:
        """The open file, opened again if the path no longer names it (deleted, moved away,
        replaced, its directory deleted)."""
        file = self._file
        try:
            stat = os.stat(self._name)
        except (FileNotFoundError, NotADirectoryError):
            identity = None
        except OSError:  # the path cannot be checked (a permission): the file is still there
            if file is not None:
                return file
            identity = None
        else:
            identity = (stat.st_dev, stat.st_ino)
        if file is not None and identity == self._identity:
            return file
        with contextlib.suppress(OSError):  # the old file left the path: its close is moot
            self._close_file()
        try:
            return self._open()
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"the log file was removed and cannot be created again ({exc.strerror}); "
                "records are lost until it can",
                self._name,
            ) from exc

    def write(self, lines: list[bytes]) -> None:
        file = self._follow_path()
        limit = self._max_bytes
        if limit is None:
            self._write_records(file, lines, 0, len(lines))
            return
        size = self._size
        start = 0
        for index, line in enumerate(lines):
            if size and size + len(line) > limit:
                self._write_records(file, lines, start, index)
                try:
                    file = self._rotate()
                except OSError as exc:
                    raise PartialWriteError(index) from exc
                size, start = 0, index
            size += len(line)
        self._write_records(file, lines, start, len(lines))

    def _write_records(self, file: FileIO, lines: list[bytes], start: int, stop: int) -> None:
        """Write ``lines[start:stop]``; on failure leave no torn record and say what was written.

        Raises:
            PartialWriteError: the write failed; ``written`` counts from the batch's start.
        """
        chunk = lines if start == 0 and stop == len(lines) else lines[start:stop]
        head = b"\n" if self._torn else b""
        data = b"".join(chunk)
        if head:
            data = head + data
        sent = 0
        try:
            view = memoryview(data)
            while sent < len(data):
                written = file.write(view[sent:])
                if written is not None:  # only non-blocking files return None; ours blocks
                    sent += written
        except OSError as exc:
            self._size += sent
            if sent >= len(head):
                self._torn = False
            whole, torn = self._whole_records(chunk, sent - len(head))
            if torn:
                self._cut(file, torn)
            raise PartialWriteError(start + whole) from exc
        self._size += sent
        self._torn = False

    @staticmethod
    def _whole_records(lines: list[bytes], sent: int) -> tuple[int, int]:
        """How many of ``lines`` fit whole in ``sent`` bytes, and the bytes left over."""
        whole = 0
        for line in lines:
            if len(line) > sent:
                break
            sent -= len(line)
            whole += 1
        return whole, max(sent, 0)

    def _cut(self, file: FileIO, torn: int) -> None:
        """Truncate the torn record's ``torn`` bytes off the end; else mark the file torn."""
        try:
            end = os.fstat(file.fileno()).st_size
            os.ftruncate(file.fileno(), max(end - torn, 0))
            self._size = max(end - torn, 0)
        except OSError:
            self._torn = True  # reported with the write's own error; the next record copes

    def _rotate(self) -> FileIO:
        stamp_s = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(stamp_s))
        stamp += f".{min(int((stamp_s % 1) * 1_000_000), 999_999):06d}Z"
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        n = 0
        while target.exists() or target.with_name(target.name + ".gz").exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.{stamp}-{n}")
        self._close_file()
        try:
            os.rename(self.path, target)
        finally:
            # Whether or not the rename worked, keep appending to a file at ``path``; if it
            # cannot be opened, the next batch tries again (``_follow_path``).
            file = self._open()
        self.rotations += 1
        if self._archiver is not None:
            self._archiver.submit(target)
        return file

    def close(self) -> None:
        self._close_file()
