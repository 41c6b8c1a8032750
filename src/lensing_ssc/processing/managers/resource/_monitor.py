"""The background thread that samples at a fixed interval.

A named daemon thread that calls one function every ``interval`` seconds, waits on an
``Event`` (never ``sleep``) so it stops at once, and is joined on stop. What a tick does
(sampling, callbacks) belongs to the ResourceManager.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["PeriodicThread"]

_log = logging.getLogger("lensing_ssc.processing.managers.resource")


class PeriodicThread:
    """Call ``tick()`` now and then every ``interval`` seconds until :meth:`stop`.

    Ticks keep a fixed cadence (a slow tick shortens the next wait, a missed deadline is
    skipped, not caught up). An exception in ``tick`` is logged and the thread goes on.

    Args:
        tick: What to do each interval.
        interval: Seconds between ticks.
        name: The thread's name (``lensing_ssc-...``).
    """

    def __init__(self, tick: Callable[[], object], interval: float, name: str) -> None:
        self._tick = tick
        self.interval = interval
        self.name = name
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread was started and not stopped."""
        return self._thread is not None

    @property
    def native_id(self) -> int | None:
        """The OS id of the running thread (to measure its CPU time), else ``None``."""
        return self._thread.native_id if self._thread is not None else None

    def start(self) -> None:
        """Start the thread; no-op if it runs already."""
        if self._thread is not None:
            return
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and join it (unless called from the thread itself)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._halt.set()
        if thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._halt.is_set():
            try:
                self._tick()
            except Exception:  # the thread outlives any one bad tick; the log says why
                _log.exception("%s: tick failed; the thread keeps running", self.name)
            deadline = max(deadline + self.interval, time.monotonic())
            self._halt.wait(deadline - time.monotonic())
