"""Where formatted lines go: the log file (with rotation and archival) and the console.

A sink takes a batch of complete records (``list[bytes]``, each ending in a newline) from
the writer thread and writes it; errors propagate to the writer, which reports them once.

:class:`RotatingFileSink` writes through an unbuffered file, one ``write`` per batch, so a
crash or a ``fork`` never leaves half a batch in a user-space buffer. When the next record
would take the file past ``max_bytes``, the file is renamed to
``<name>.<UTC time>[-n]`` (e.g. ``run.log.20260509T175525.123456Z``) and a new one is
started; a record never straddles two files. Rotated files never move again, so the
:class:`Archiver` thread (``lensing_ssc-log-archiver``) gzips them (``...Z.gz``) and
prunes them by count (``backup_count`` newest kept) and age (``retention_days``) off the
writer's path, and finishes leftovers of an earlier run at start-up.

The queue and writer thread are :mod:`._writer`; records from worker processes arrive
through :mod:`._transport`.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["Archiver", "ConsoleSink", "RotatingFileSink", "Sink", "list_backups"]

ARCHIVER_THREAD_NAME = "lensing_ssc-log-archiver"
_CHUNK = 1 << 20


class Sink(Protocol):
    """A destination for formatted records."""

    label: str

    def write(self, lines: list[bytes]) -> None: ...

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
    except FileNotFoundError:
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
        self._prune()

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
        self._max_bytes = max_bytes
        self._archiver = archiver
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open for the run
        self._size = os.fstat(self._file.fileno()).st_size
        self.rotations = 0

    def write(self, lines: list[bytes]) -> None:
        limit = self._max_bytes
        if limit is None:
            self._write_all(b"".join(lines))
            return
        size = self._size
        start = 0
        for index, line in enumerate(lines):
            if size and size + len(line) > limit:
                self._write_all(b"".join(lines[start:index]))
                self._rotate()
                size, start = 0, index
            size += len(line)
        self._write_all(b"".join(lines[start:]))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if written is None:  # only non-blocking files return None; ours is blocking
                continue
            self._size += written
            view = view[written:]

    def _rotate(self) -> None:
        stamp_s = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(stamp_s))
        stamp += f".{min(int((stamp_s % 1) * 1_000_000), 999_999):06d}Z"
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        n = 0
        while target.exists() or target.with_name(target.name + ".gz").exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.{stamp}-{n}")
        self._file.close()
        try:
            os.rename(self.path, target)
        finally:
            # Whether or not the rename worked, keep appending to a file at ``path``.
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
            self._size = os.fstat(self._file.fileno()).st_size
        self.rotations += 1
        if self._archiver is not None:
            self._archiver.submit(target)

    def close(self) -> None:
        self._file.close()
