"""What every progress display does, and the two simple ones: nothing, and plain lines.

:class:`Display` is the interface; :class:`NullDisplay` shows nothing (progress disabled by
config, argument or ``LENSING_SSC_PROGRESS__ENABLED=false``); :class:`PlainDisplay` is for a
file, a pipe, a batch job's output: one line at start, one per task every
``heartbeat_interval`` seconds (also while nothing advances: a stall is news), one at the
end, with no carriage returns and no escape codes. The live terminal and Jupyter displays
are in :mod:`._live`; :mod:`._select` chooses one from where output goes, never from the
caller's wishes.

Every display has the same four calls, made by the manager (never from ``update()``):
``start``, ``refresh`` (each tick of the refresher thread), ``event`` (pause, resume,
restore) and ``stop``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol, TextIO

from lensing_ssc.processing.managers.progress._snapshot import (
    ProgressSnapshot,
    describe,
    format_count,
)

__all__ = ["Display", "NullDisplay", "PlainDisplay"]


class Display(Protocol):
    """What the manager drives; implementations are chosen by :mod:`._select`."""

    mode: str

    def start(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Show the task tree for the first time."""

    def refresh(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Show the current state (a display may skip ticks, e.g. between heartbeats)."""

    def event(self, snapshot: ProgressSnapshot, message: str, now: float) -> None:
        """Note something that happened to the root task (``paused``, ``resumed at ...``)."""

    def stop(self, snapshot: ProgressSnapshot, outcome: str, now: float) -> None:
        """Show the final state and release the output."""


class NullDisplay:
    """Shows nothing: progress is disabled."""

    mode = "disabled"

    def start(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Nothing to show."""

    def refresh(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Nothing to show."""

    def event(self, snapshot: ProgressSnapshot, message: str, now: float) -> None:
        """Nothing to show."""

    def stop(self, snapshot: ProgressSnapshot, outcome: str, now: float) -> None:
        """Nothing to show."""


class PlainDisplay:
    """Heartbeat lines for files, pipes and batch logs.

    Args:
        stream: Where lines go (each starts with a local timestamp) when there is no logger.
        logger: If given, lines go to ``logger.info`` instead, with the task's status dict
            as ``extra={"progress": ...}`` so structured (JSON) logs carry the numbers.
        heartbeat_interval: Seconds between heartbeats.
    """

    mode = "plain"

    def __init__(
        self, stream: TextIO, *, logger: logging.Logger | None, heartbeat_interval: float
    ) -> None:
        self._stream = stream
        self._logger = logger
        self._interval = heartbeat_interval
        self._lock = threading.Lock()
        self._last_beat = 0.0
        self._changes: dict[tuple[str, ...], tuple[object, float]] = {}
        self._broken = False

    def start(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Write the start line (``resumed at`` when the task was restored)."""
        with self._lock:
            self._last_beat = now
            self._track_changes(snapshot, now)
            total = "unknown" if snapshot.total is None else format_count(snapshot.total)
            self._write(snapshot, 0, f"{snapshot.name}: started, total {total}")

    def refresh(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Write one line per open task when a heartbeat is due."""
        with self._lock:
            self._track_changes(snapshot, now)
            if now - self._last_beat < self._interval:
                return
            self._last_beat = now
            for path, depth, row in _rows(snapshot):
                changed_at = self._changes[path][1]
                stalled = now - changed_at if now - changed_at >= self._interval else None
                self._write(row, depth, describe(row, stalled_for=stalled))

    def event(self, snapshot: ProgressSnapshot, message: str, now: float) -> None:
        """Write one line for the root task: ``name: message``."""
        with self._lock:
            self._write(snapshot, 0, f"{snapshot.name}: {message}")

    def stop(self, snapshot: ProgressSnapshot, outcome: str, now: float) -> None:
        """Write the end line: ``name: done, 1000/1000 100.0% | 8.3/s | elapsed 0:02:00``."""
        with self._lock:
            self._write(snapshot, 0, describe(snapshot, outcome=outcome))

    def _track_changes(self, snapshot: ProgressSnapshot, now: float) -> None:
        seen: dict[tuple[str, ...], tuple[object, float]] = {}
        for path, _, row in _rows(snapshot):
            key = (row.current, row.paused)
            previous = self._changes.get(path)
            seen[path] = previous if previous is not None and previous[0] == key else (key, now)
        self._changes = seen

    def _write(self, row: ProgressSnapshot, depth: int, text: str) -> None:
        line = "  " * depth + text
        if self._logger is not None:
            status = row.to_dict()
            del status["children"]
            self._logger.info(line, extra={"progress": status})
            return
        if self._broken:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            self._stream.write(f"{stamp} {line}\n")
            self._stream.flush()
        except (OSError, ValueError):  # the stream was closed under us: stop writing to it
            self._broken = True


def _rows(
    snapshot: ProgressSnapshot, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], int, ProgressSnapshot]]:
    here = (*path, snapshot.name)
    rows = [(here, len(path), snapshot)]
    for child in snapshot.children:
        rows.extend(_rows(child, here))
    return rows
