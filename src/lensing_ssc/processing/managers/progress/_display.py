"""Where progress goes: choosing a display, and the plain heartbeat display.

:func:`choose_display` decides from where output goes, never from the caller's wishes:

* disabled (config, argument or ``LENSING_SSC_PROGRESS__ENABLED=false``) → :class:`NullDisplay`;
* a Jupyter kernel → a live cell display (``_live``);
* a terminal (``isatty()`` and ``TERM`` not ``dumb``) → a rich live display (``_live``);
* anything else — a file, a pipe, a batch job's output — → :class:`PlainDisplay`: one line at
  start, one per task every ``heartbeat_interval`` seconds (also while nothing advances: a
  stall is news), one at the end. No carriage returns, no escape codes.

Every display has the same four calls, made by the manager (never from ``update()``):
``start``, ``refresh`` (each tick of the refresher thread), ``event`` (pause, resume,
restore) and ``stop``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Protocol, TextIO

from rich.console import Console

from lensing_ssc.processing.managers.progress._snapshot import (
    ProgressSnapshot,
    describe,
    format_count,
)

__all__ = ["Display", "NullDisplay", "PlainDisplay", "choose_display"]


class Display(Protocol):
    """What the manager drives; implementations are chosen by :func:`choose_display`."""

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
            status = row.as_dict()
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


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def choose_display(
    stream: TextIO,
    *,
    enabled: bool,
    logger: logging.Logger | None,
    heartbeat_interval: float,
) -> Display:
    """The display for ``stream``: disabled, Jupyter, terminal or plain heartbeat lines."""
    if not enabled:
        return NullDisplay()
    # Imported here: the rich live machinery is only needed for interactive output.
    from lensing_ssc.processing.managers.progress import _live as _progress_live

    if stream in (sys.stdout, sys.stderr) and Console(file=stream).is_jupyter:
        return _progress_live.notebook_display()
    if _is_terminal(stream):
        return _progress_live.LiveDisplay(stream)
    return PlainDisplay(stream, logger=logger, heartbeat_interval=heartbeat_interval)
