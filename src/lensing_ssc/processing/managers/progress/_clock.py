"""Counting and timing for :mod:`~lensing_ssc.processing.managers.progress._manager`.

Three small pieces every task of a progress tree shares:

* :func:`unit_counter` — the hot-path counter. ``next()`` on an :func:`itertools.count` is a
  single C call that holds the GIL, so unit increments from any number of threads are exact
  without a lock. On a free-threaded interpreter a locked counter with the same interface
  replaces it.
* :class:`ActiveClock` — seconds of *active* time: wall time minus pauses.
* :func:`estimate_rate` — the rate and ETA estimator (see its docstring for the choice and the
  bound it guarantees).

Validation of user-supplied totals and increments lives here too, so every entry point
(tasks, reporters in worker processes, imported state) raises the same ``ProgressError``.
Rendering is elsewhere (``_display``, ``_live``).
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
from collections.abc import Callable, Iterator
from numbers import Real

from lensing_ssc.core.base.exceptions import ProgressError

__all__ = [
    "ActiveClock",
    "LockedCount",
    "check_amount",
    "check_total",
    "estimate_rate",
    "unit_counter",
]

Number = int | float


class LockedCount:
    """An ``itertools.count`` look-alike whose ``next()`` takes a lock.

    Used where ``itertools.count`` is not atomic (interpreters without a GIL).
    """

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        with self._lock:
            value = self._value
            self._value = value + 1
        return value


def _gil_enabled() -> bool:
    probe: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else probe()


def unit_counter() -> Iterator[int]:
    """An iterator whose ``next()`` counts one item atomically and returns the prior count."""
    return itertools.count() if _gil_enabled() else LockedCount()


def _as_number(value: Real) -> Number:
    if isinstance(value, int):
        return value
    number = float(value)
    return int(number) if number.is_integer() else number


def check_amount(n: object) -> Number:
    """Return ``n`` as a number of items, or raise ``ProgressError`` naming it."""
    return _finite_count(
        n,
        "progress increment must be a number",
        "pass the count of items finished since the last update, e.g. update(1)",
        range_hint="progress only moves forward; pass the items finished since the last update",
    )


def check_total(total: object) -> Number | None:
    """Return ``total`` as a number (``None`` means unknown), or raise ``ProgressError``."""
    if total is None:
        return None
    hint = "pass the number of items, or None when it is not known"
    return _finite_count(total, "progress total must be a number or None", hint, range_hint=hint)


def _finite_count(value: object, kind_error: str, kind_hint: str, *, range_hint: str) -> Number:
    """``value`` as a finite number >= 0; ``ProgressError`` with the given words otherwise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ProgressError(
            f"{kind_error}, got {type(value).__name__} {value!r}", value=value, hint=kind_hint
        )
    number = _as_number(value)
    if not math.isfinite(number) or number < 0:
        what = kind_error.split(" must ", 1)[0]
        raise ProgressError(
            f"{what} must be a finite number >= 0, got {value!r}", value=value, hint=range_hint
        )
    return number


class ActiveClock:
    """Seconds of active time on an injectable monotonic clock, pauses excluded.

    Args:
        clock: Monotonic seconds; ``time.monotonic`` in production, a fake in tests.

    Example:
        >>> ticks = iter([0.0, 5.0, 9.0, 10.0]).__next__
        >>> active = ActiveClock(ticks)   # started at 0
        >>> active.pause()                # at 5
        True
        >>> active.resume()               # at 9: four paused seconds
        True
        >>> active.now()                  # at 10
        6.0
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._banked = 0.0
        self._since: float | None = clock()

    @property
    def paused(self) -> bool:
        """Whether the clock is stopped."""
        return self._since is None

    def now(self) -> float:
        """Active seconds since the clock was made."""
        with self._lock:
            since = self._since
            return self._banked if since is None else self._banked + (self.clock() - since)

    def pause(self) -> bool:
        """Stop counting; return ``False`` if already paused."""
        with self._lock:
            if self._since is None:
                return False
            self._banked += self.clock() - self._since
            self._since = None
            return True

    def resume(self) -> bool:
        """Count again; return ``False`` if not paused."""
        with self._lock:
            if self._since is not None:
                return False
            self._since = self.clock()
            return True


def estimate_rate(
    current: Number, total: Number | None, done_since_start: Number, active_seconds: float
) -> tuple[float | None, float | None]:
    """Rate (items per active second) and ETA (seconds) of one task.

    The estimator is the mean rate over the work done *in this run*: items finished since the
    task started or was resumed from a checkpoint, divided by the active seconds since then.
    Hence paused time never counts (the active clock stops), and restored items never
    inflate the rate (they are not part of ``done_since_start``).

    It is deliberately not a short-window or exponentially smoothed rate. One item that
    takes ``s`` times the typical duration, after ``N`` items, raises the estimated total
    duration (elapsed + ETA) by at most ``s / N`` — while it runs and for the rest of the
    run — and never lowers it: 20 % for a tenfold-slow item after 50, 10 % after 100. A
    windowed or exponentially smoothed rate instead drops towards zero while the slow item
    runs, and its ETA towards infinity. The price is slow adaptation when a job's pace
    changes for good; the estimate then converges as the new pace dominates the run.

    Returns:
        ``(rate, eta)``; ``rate`` is ``None`` until some work is done in some active time,
        ``eta`` is ``None`` without a total or a rate, and ``0.0`` once the total is reached.
    """
    rate = (
        done_since_start / active_seconds if done_since_start > 0 and active_seconds > 0 else None
    )
    if total is None:
        return rate, None
    if current >= total:
        return rate, 0.0
    if rate is None:
        return None, None
    return rate, (total - current) / rate
