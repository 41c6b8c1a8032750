"""``RunLock``: one run at a time in a run directory, and a refused run touches nothing.

A :class:`~.context.ManagerContext` holds its run directory's lock file
(:attr:`.rundir.RunDir.lock_file`) with ``flock`` from before it builds its managers until it
has closed them. A second run of the directory (another process) is refused then and there,
with a :class:`~lensing_ssc.core.base.exceptions.CheckpointError` naming the run that holds
it, before it writes anything: not the status file, not the log, not a journal. A pipeline
takes the lock before it records its settings in the directory and hands it to its context
(:mod:`lensing_ssc.pipelines`).

Holds are counted per process: contexts nested in one process, or a pipeline and the
context it builds, share one hold. A forked process does not inherit a hold (``flock`` is
shared with the parent's descriptor, not its own). A filesystem without ``flock``
(``ENOSYS``, ``ENOLCK``, ``EOPNOTSUPP``: Lustre mounted ``noflock``) keeps no lock: each
map's journal still keeps two drivers apart (:mod:`lensing_ssc.processing.runner`). Hosts
that share the directory over a filesystem whose ``flock`` is node-local are kept apart by
those journals only.

What a run writes into the directory is :mod:`.rundir`'s to name and each writer's to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from lensing_ssc.core.base.exceptions import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, documented
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunLock"]

_log = logging.getLogger("lensing_ssc.context")
_NO_FLOCK = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL})
_HOLDER_BYTES = 4096


@dataclass
class _Hold:
    """This process's hold of one lock file: its descriptor (``None``: no flock there)."""

    fd: int | None
    count: int
    pid: int


_holds: dict[str, _Hold] = {}
_holds_lock = threading.Lock()


class RunLock:
    """The lock of one run directory, held from :meth:`acquire` to :meth:`release`.

    Args:
        path: The lock file (``RunDir(run_dir).lock_file``); its directory is created.

    Example:
        >>> with RunLock(RunDir("runs/example").lock_file):  # doctest: +SKIP
        ...     ...  # no other process runs in runs/example meanwhile
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._key = os.path.realpath(self.path)
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this lock object holds the run directory now."""
        return self._held

    def acquire(self) -> None:
        """Take the run directory, or refuse at once if another process runs in it.

        Raises:
            CheckpointError: Another run holds the directory (naming its pid and host), or
                the lock file cannot be made.
        """
        if self._held:
            return
        with _holds_lock:
            hold = _holds.get(self._key)
            if hold is not None and hold.pid == os.getpid():
                hold.count += 1
            else:
                _holds[self._key] = _Hold(self._lock(), 1, os.getpid())
        self._held = True

    def release(self) -> None:
        """Give the run directory back (the file stays, for the next run); idempotent."""
        if not self._held:
            return
        self._held = False
        with _holds_lock:
            hold = _holds.get(self._key)
            if hold is None or hold.pid != os.getpid():
                return
            hold.count -= 1
            if hold.count == 0:
                del _holds[self._key]
                if hold.fd is not None:
                    os.close(hold.fd)  # closing the descriptor releases the flock

    def _lock(self) -> int | None:
        if fcntl is None:  # pragma: no cover - Windows
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise CheckpointError(
                f"cannot use {str(self.path.parent)!r} as the run directory: {exc.strerror or exc}",
                value=str(self.path.parent),
                hint="choose a writable directory (run_dir in the config, or --run-dir)",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointError(
                f"run directory {str(self.path.parent)!r} is in use by another run: {holder}",
                value=str(self.path.parent),
                hint="wait for that run to finish or stop it (lensing-ssc status shows it), "
                "or choose another run directory",
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                os.close(fd)
                raise CheckpointError(
                    f"cannot lock the run directory {str(self.path.parent)!r}: "
                    f"{exc.strerror or exc}",
                    value=str(self.path.parent),
                    hint="check that the filesystem is healthy",
                ) from exc
            _log.info(
                "run directory %s: the filesystem has no flock (%s); its journals alone keep "
                "two runs apart",
                self.path.parent,
                exc.strerror or exc,
            )
            os.close(fd)
            return None
        _write_holder(fd)
        return fd

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<RunLock {str(self.path)!r} ({'held' if self._held else 'free'})>"


def _write_holder(fd: int) -> None:
    """Say who holds the lock, in the file itself, for the error of a refused run."""
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    data = json.dumps(holder).encode()
    with contextlib.suppress(OSError):  # the lock holds without the note
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def _read_holder(fd: int) -> str:
    """``pid 123 on host, since 2026-01-02 03:04:05``, or what is known of it."""
    try:
        holder = json.loads(os.pread(fd, _HOLDER_BYTES, 0))
        pid, host = int(holder["pid"]), str(holder["host"])
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
    except (OSError, ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return "a process that did not say who it is"
    return f"pid {pid} on {host}, since {since}"
