"""The run's ``status.json``: a periodically refreshed snapshot of every manager.

:class:`StatusFile` owns the file and its refresher thread; the :class:`ManagerContext`
hands it a function returning the status dict and never writes the file itself.
``lensing-ssc status RUN_DIR`` reads it back with :func:`read_status`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import LensingSSCError
from lensing_ssc.core.io import atomic_write

__all__ = ["StatusFile", "read_status"]

_log = logging.getLogger("lensing_ssc.status")


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

    def write(self, *, state: str) -> None:
        """Write the snapshot now; a failure is logged once, never raised."""
        try:
            body = {
                "state": state,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": self._started,
                "updated": time.time(),
                "managers": self._snapshot(),
            }
            atomic_write(self.path, json.dumps(body, indent=2, default=str).encode())
        except (OSError, LensingSSCError, TypeError, ValueError) as exc:
            if not self._failed_once:
                self._failed_once = True
                _log.warning("cannot write run status to %s: %s", self.path, exc)

    def close(self, *, state: str = "finished") -> None:
        """Stop refreshing and write the final state. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._open:
            self._open = False
            self.write(state=state)


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """Read ``RUN_DIR/status.json``; raise :class:`LensingSSCError` when absent or unreadable."""
    path = Path(run_dir) / "status.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LensingSSCError(
            f"no status file in {str(run_dir)!r}",
            value=str(path),
            hint="is this the run directory of a job started with ManagerContext?",
        ) from None
    except (OSError, ValueError) as exc:
        raise LensingSSCError(f"cannot read {str(path)!r}: {exc}", value=str(path)) from exc
    if not isinstance(data, dict):
        raise LensingSSCError(f"{str(path)!r} does not hold a status object", value=str(path))
    return data
