"""What every progress display does, and the two simple ones: nothing, and plain lines.

:class:`Display` is the interface; :class:`NullDisplay` shows nothing (progress disabled by
config, argument or ``LENSING_SSC_PROGRESS__ENABLED=false``); :class:`PlainDisplay` is for a
file, a pipe, a batch job's output: one line at start, one per task every
``heartbeat_interval`` seconds (also while nothing advances: a stall is news), one at the
end, with no carriage returns and no escape codes. The live terminal and Jupyter displays
are in :mod:`._live`; :mod:`._select` chooses one from where output goes, never from the
caller's wishes.

Every display has the same five calls, made by the manager (never from ``update()``):
``start``, ``refresh`` (each tick of the refresher thread), ``event`` (pause, resume,
restore), ``notice`` (a line for the person watching, such as a signal's acknowledgement)
and ``stop``.

A task that only holds subtasks (no total and no count of its own, such as the root around
``ManagerContext.map`` stages) is shown by the work of its newest open subtask —
``patch statistics [patches]: 3200/10240 31.3% | 323/s | ...`` — because its own line
would say nothing; :func:`work_rows` makes that one row for every display. A task is
"without progress" only when nothing under it advanced either.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Protocol, TextIO

from lensing_ssc.processing.managers.progress._snapshot import (
    ProgressSnapshot,
    describe,
    format_count,
    format_duration,
)

__all__ = ["Display", "NullDisplay", "PlainDisplay", "work_rows"]


class Display(Protocol):
    """What the manager drives; implementations are chosen by :mod:`._select`."""

    mode: str

    def start(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Show the task tree for the first time."""

    def refresh(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Show the current state (a display may skip ticks, e.g. between heartbeats)."""

    def event(self, snapshot: ProgressSnapshot, message: str, now: float) -> None:
        """Note something that happened to the root task (``paused``, ``resumed at ...``)."""

    def notice(self, line: str) -> None:
        """Show ``line`` to the person watching, where no redraw erases it."""

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

    def notice(self, line: str) -> None:
        """Nothing to show."""

    def stop(self, snapshot: ProgressSnapshot, outcome: str, now: float) -> None:
        """Nothing to show."""


class PlainDisplay:
    """Heartbeat lines for files, pipes and batch logs.

    Args:
        stream: Where lines go (each starts with a local timestamp) when there is no logger.
        logger: If given, lines go to ``logger.info`` instead, with the task's status dict
            as ``extra={"progress": ...}`` so structured (JSON) logs carry the numbers, and
            the kind of line (``start``, ``heartbeat``, ``event``, ``end``) as
            ``extra={"progress_line": ...}``, so a handler can pick the heartbeats.
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
            self._write(snapshot, 0, f"{snapshot.name}: started, total {total}", "start")

    def refresh(self, snapshot: ProgressSnapshot, now: float) -> None:
        """Write one line per open task when a heartbeat is due."""
        with self._lock:
            self._track_changes(snapshot, now)
            if now - self._last_beat < self._interval:
                return
            self._last_beat = now
            for path, depth, row in work_rows(snapshot):
                if row.total is None and not row.current and not row.children:
                    # Nothing to count (between the stages of a job): only the time.
                    elapsed = format_duration(row.elapsed)
                    self._write(row, depth, f"{row.name}: elapsed {elapsed}", "heartbeat")
                    continue
                changed_at = self._changes[path][1]
                stalled = now - changed_at if now - changed_at >= self._interval else None
                self._write(row, depth, describe(row, stalled_for=stalled), "heartbeat")

    def event(self, snapshot: ProgressSnapshot, message: str, now: float) -> None:
        """Write one line for the root task: ``name: message``."""
        with self._lock:
            self._write(snapshot, 0, f"{snapshot.name}: {message}", "event")

    def notice(self, line: str) -> None:
        """Write ``line`` as it is (to the logger when there is one, as an ``event``)."""
        with self._lock:
            if self._logger is not None:
                self._logger.info(line, extra={"progress_line": "event"})
            else:
                self._write_line(line)

    def stop(self, snapshot: ProgressSnapshot, outcome: str, now: float) -> None:
        """Write the end line: ``name: done, 1000/1000 100.0% | 8.3/s | elapsed 0:02:00``."""
        with self._lock:
            self._write(snapshot, 0, describe(snapshot, outcome=outcome), "end")

    def _track_changes(self, snapshot: ProgressSnapshot, now: float) -> None:
        seen: dict[tuple[str, ...], tuple[object, float]] = {}
        for path, _, row in work_rows(snapshot):
            # Work anywhere below a task is progress of that task too.
            key = tuple((sub.current, sub.paused) for _, sub in row.walk())
            previous = self._changes.get(path)
            seen[path] = previous if previous is not None and previous[0] == key else (key, now)
        self._changes = seen

    def _write(self, row: ProgressSnapshot, depth: int, text: str, kind: str) -> None:
        line = "  " * depth + text
        if self._logger is not None:
            status = row.to_dict()
            del status["children"]
            self._logger.info(line, extra={"progress": status, "progress_line": kind})
            return
        self._write_line(line)

    def _write_line(self, line: str) -> None:
        if self._broken:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            self._stream.write(f"{stamp} {line}\n")
            self._stream.flush()
        except (OSError, ValueError):  # the stream was closed under us: stop writing to it
            self._broken = True


def holds_only_subtasks(snapshot: ProgressSnapshot) -> bool:
    """Whether ``snapshot`` has no count of its own, only open subtasks doing the work."""
    return snapshot.total is None and not snapshot.current and bool(snapshot.children)


def work_rows(
    snapshot: ProgressSnapshot, path: tuple[str, ...] = (), depth: int = 0
) -> list[tuple[tuple[str, ...], int, ProgressSnapshot]]:
    """The rows a display shows: ``(path, depth, row)`` for each task, depth first.

    A task that only holds subtasks is merged with its newest open subtask into one row,
    named ``task [subtask]``, with the subtask's count, rate and ETA; the subtask's own
    subtasks follow it. Every other task is its own row.
    """
    here = (*path, snapshot.name)
    if holds_only_subtasks(snapshot):
        *others, current = snapshot.children
        merged = dataclasses.replace(current, name=f"{snapshot.name} [{current.name}]")
        rows = [(here, depth, merged)]
        for child in (*others, *current.children):
            rows.extend(work_rows(child, here, depth + 1))
        return rows
    rows = [(here, depth, snapshot)]
    for child in snapshot.children:
        rows.extend(work_rows(child, here, depth + 1))
    return rows
