"""The value object of a progress tree and the text that describes it.

:class:`ProgressSnapshot` is what ``ProgressManager.get_status()``, callbacks and every
display consume: a frozen, typed view of one task and its subtasks at one moment.
:func:`describe` turns one snapshot into the plain one-line text used by heartbeat lines and
the end line; the rich table of the terminal display is built in ``_live``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProgressSnapshot", "describe", "format_count", "format_duration", "format_rate"]

Number = int | float


@dataclass(frozen=True)
class ProgressSnapshot:
    """One task of a progress tree at one moment.

    Attributes:
        name: The task's name (the manager's ``description`` for the root).
        current: Items done, including items restored from a checkpoint.
        total: Items expected, or ``None`` when unknown.
        percentage: ``100 * current / total``, capped at 100 (``current`` itself may pass
            ``total``), or ``None`` without a total.
        rate: Items per active second in this run, or ``None`` before any work.
        eta: Seconds left at ``rate``, ``0.0`` when done, ``None`` when unknown.
        elapsed: Active seconds (pauses excluded), including those of previous runs.
        paused: Whether the manager is paused.
        finished: Whether the task is closed.
        resumed_from: Items restored from a checkpoint, or ``None`` for a fresh task.
        children: Open subtasks, in the order they were opened.
    """

    name: str
    current: Number
    total: Number | None
    percentage: float | None
    rate: float | None
    eta: float | None
    elapsed: float
    paused: bool = False
    finished: bool = False
    resumed_from: Number | None = None
    children: tuple[ProgressSnapshot, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready view: plain numbers, strings, ``None`` and nested lists."""
        return {
            "name": self.name,
            "current": self.current,
            "total": self.total,
            "percentage": self.percentage,
            "rate": self.rate,
            "eta": self.eta,
            "elapsed": self.elapsed,
            "paused": self.paused,
            "finished": self.finished,
            "resumed_from": self.resumed_from,
            "children": [child.to_dict() for child in self.children],
        }

    def progress_key(self) -> tuple[Any, ...]:
        """What changes when work is done (not the ever-moving clocks); used to skip no-ops."""
        return (
            self.name,
            self.current,
            self.total,
            self.paused,
            self.finished,
            tuple(child.progress_key() for child in self.children),
        )

    def walk(self, depth: int = 0) -> list[tuple[int, ProgressSnapshot]]:
        """This task and its subtasks depth first, each with its nesting depth."""
        rows = [(depth, self)]
        for child in self.children:
            rows.extend(child.walk(depth + 1))
        return rows


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (or ``Dd H:MM:SS`` past a day); ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = int(seconds + 0.5)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


def format_count(value: Number | None) -> str:
    """Integers as they are, fractional counts with one decimal; ``?`` when unknown."""
    if value is None:
        return "?"
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return f"{value:.1f}"


def format_rate(rate: float | None) -> str:
    """Items per second, or per minute/hour for slow tasks: ``12.3/s``, ``4.0/min``."""
    if rate is None:
        return "?/s"
    if rate >= 1.0 or rate == 0:
        return f"{rate:.3g}/s" if rate < 1000 else f"{rate:,.0f}/s"
    if rate * 60 >= 1.0:
        return f"{rate * 60:.3g}/min"
    return f"{rate * 3600:.3g}/h"


def describe(
    snapshot: ProgressSnapshot, *, stalled_for: float | None = None, outcome: str | None = None
) -> str:
    """One plain line of text: ``name: 420/1000 42.0% | 12.3/s | elapsed 0:00:34 | eta 0:00:47``.

    A task that continues an earlier run's work is named ``name (resumed at 300)``.

    Args:
        snapshot: The task to describe.
        stalled_for: Seconds without progress, shown instead of the rate when given.
        outcome: For an end line: ``done``, ``stopped``...; put after the name, no ETA.
    """
    if outcome is not None and snapshot.total is None and not snapshot.current:
        # A task that only held subtasks (the root around ctx.map): no count of its own,
        # and "0 | ?/s" would read as nothing done.
        return f"{snapshot.name}: {outcome} | elapsed {format_duration(snapshot.elapsed)}"
    count = format_count(snapshot.current)
    if outcome is not None:
        count = f"{outcome}, {count}"
    if snapshot.total is not None:
        count = f"{count}/{format_count(snapshot.total)}"
    if snapshot.percentage is not None:
        count = f"{count} {snapshot.percentage:.1f}%"
    name = snapshot.name
    if snapshot.resumed_from is not None:
        name = f"{name} (resumed at {format_count(snapshot.resumed_from)})"
    parts = [f"{name}: {count}"]
    if snapshot.paused:
        parts.append("paused")
    elif stalled_for is not None:
        parts.append(f"no progress for {format_duration(stalled_for)}")
    else:
        parts.append(format_rate(snapshot.rate))
    parts.append(f"elapsed {format_duration(snapshot.elapsed)}")
    if snapshot.total is not None and outcome is None:
        parts.append(f"eta {format_duration(snapshot.eta)}")
    return " | ".join(parts)
