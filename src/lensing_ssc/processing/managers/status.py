"""The run's status file: a periodically refreshed snapshot of every manager.

:class:`StatusFile` owns the file and its refresher thread; the :class:`ManagerContext`
hands it a function returning the status dict and never writes the file itself.
``lensing-ssc status RUN_DIR`` reads it back with :func:`read_status`, and asks
:func:`check_writer` whether a run the file calls "running" still is: a killed job never
gets to write its final state, so the file alone cannot tell. Where the file lives in a run
directory is :class:`~.rundir.RunDir`'s ``status_file``.

Each write replaces the file atomically (a reader never sees half of it) but is not flushed
to disk: it is a snapshot for people, rewritten every refresh, and no run reads it back.
Flushing it cost 17 ms at the context's start and 21 ms at its close on our CI machines
(file and directory ``fsync``), 0.4 % of a 10-second ``ManagerContext.map`` in
``bench_runner.py``, the whole of the context's cost over the runner's. A power cut may
take the last state with it (the file then names a writer that :func:`check_writer`
reports as gone) or, on some filesystems, leave the file empty, which
:func:`read_status` reports as unreadable.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

from lensing_ssc.core.base.exceptions import LensingSSCError
from lensing_ssc.core.io import atomic_write
from lensing_ssc.processing.managers.rundir import RunDir

__all__ = ["StatusFile", "WriterCheck", "check_writer", "read_status"]

_log = logging.getLogger("lensing_ssc.status")

# Seconds by which two readings of one process's start time may differ (clock ticks, rounding).
_START_TOLERANCE = 1.0


class StatusFile:
    """Write ``snapshot()`` to ``path`` now, every ``interval`` seconds, and on :meth:`close`.

    Args:
        path: The status file (its directory is created).
        snapshot: Returns the JSON-ready status of the run.
        interval: Seconds between refreshes; ``None`` writes only on demand and at close.
    """

    def __init__(
        self, path: str | Path, snapshot: Callable[[], dict[str, Any]], *, interval: float | None
    ) -> None:
        self.path = Path(path)
        self._snapshot = snapshot
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.time()
        self._pid_started = psutil.Process().create_time()
        self._failed_once = False
        self._open = False

    def start(self) -> None:
        """Write once, then keep refreshing in a daemon thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open = True
        self.write(state="running")
        if self._interval is not None and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="lensing_ssc-status", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        assert self._interval is not None
        while not self._stop.wait(self._interval):
            self.write(state="running")

    def write(self, *, state: str, reason: str | None = None) -> None:
        """Write the snapshot now; a failure is logged once, never raised.

        Args:
            state: ``"running"``, ``"finished"``, ``"interrupted"`` or ``"failed"``.
            reason: Why the run ended that way (``"SIGTERM"``), recorded as ``stop_reason``.
        """
        try:
            body = {
                "state": state,
                "pid": os.getpid(),
                "pid_started": self._pid_started,
                "host": socket.gethostname(),
                "started": self._started,
                "updated": time.time(),
                "refresh_interval": self._interval,
                "managers": self._snapshot(),
            }
            if reason is not None:
                body["stop_reason"] = reason
            atomic_write(self.path, json.dumps(body, indent=2, default=str).encode(), fsync=False)
        except (OSError, LensingSSCError, TypeError, ValueError) as exc:
            if not self._failed_once:
                self._failed_once = True
                _log.warning("cannot write run status to %s: %s", self.path, exc)

    def close(self, *, state: str = "finished", reason: str | None = None) -> None:
        """Stop refreshing and write the final state (and why). Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._open:
            self._open = False
            self.write(state=state, reason=reason)


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """Read ``run_dir``'s status file; raise :class:`LensingSSCError` if absent or unreadable."""
    path = RunDir(run_dir).status_file
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LensingSSCError(
            f"no status file in {str(run_dir)!r}",
            value=str(path),
            hint="is this the run directory of a job started with ManagerContext?",
        ) from None
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise LensingSSCError(f"cannot read {str(path)!r}: {exc}", value=str(path)) from exc
    if not isinstance(data, dict):
        raise LensingSSCError(f"{str(path)!r} does not hold a status object", value=str(path))
    return data


@dataclass(frozen=True)
class WriterCheck:
    """Whether the process that wrote a status file still runs, as far as this host can tell.

    Attributes:
        verdict: ``"alive"``; ``"gone"`` (no such process, or one that has exited and
            awaits reaping); ``"replaced"`` (the pid now belongs to a process started
            later: the writer is gone); ``"elsewhere"`` (written on another host, which
            this one cannot see); ``"unknown"`` (the file names no pid).
        pid: The writer's pid, as recorded.
        host: The writer's host name, as recorded.
    """

    verdict: Literal["alive", "gone", "replaced", "elsewhere", "unknown"]
    pid: int | None
    host: str | None


def check_writer(status: Mapping[str, Any]) -> WriterCheck:
    """Look for the process that wrote ``status`` (a :func:`read_status` dict) on this host.

    The recorded pid is compared by start time too (``pid_started``; in files without it,
    the run's ``started``), so a pid the system has since given to another process does
    not pass for the run.

    Example:
        >>> check_writer({"pid": os.getpid(), "host": socket.gethostname()}).verdict
        'alive'
    """
    pid, host = status.get("pid"), status.get("host")
    if not isinstance(pid, int):
        return WriterCheck("unknown", None, host if isinstance(host, str) else None)
    if host != socket.gethostname():
        return WriterCheck("elsewhere", pid, host)
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return WriterCheck("gone", pid, host)
            created = process.create_time()
    except psutil.NoSuchProcess:
        return WriterCheck("gone", pid, host)
    except psutil.AccessDenied:  # someone else's process: it exists, which is all we can say
        return WriterCheck("alive", pid, host)
    recorded = status.get("pid_started")
    if isinstance(recorded, int | float):
        replaced = abs(created - recorded) > _START_TOLERANCE
    else:
        started = status.get("started")
        replaced = isinstance(started, int | float) and created > started + _START_TOLERANCE
    return WriterCheck("replaced" if replaced else "alive", pid, host)
