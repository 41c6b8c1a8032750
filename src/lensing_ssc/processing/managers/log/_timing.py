"""Timing of operations: ``LogManager.performance`` and the statistics behind ``get_stats()``.

:class:`PerformanceLogger` times functions (``time_function``, sync or async), blocks
(``time_operation``) and explicit spans (``start_timer``/``end_timer``); each timing is
logged as one record (``timer``, ``duration_s``, ``success``) and folded into
:class:`TimingRecorder`, which keeps per name: count, failures, total, mean, min and max
exactly, and p50/p95 from the durations themselves. Up to :data:`EXACT_SAMPLES` timings
per name the percentiles are exact; past that they come from a uniform reservoir of that
many timings (Vitter's algorithm R, seeded, so runs repeat), an estimate whose error
shrinks like ``1/sqrt(EXACT_SAMPLES)``. Memory per name is bounded by the reservoir.

Durations use :func:`time.perf_counter`. The records themselves go through the manager's
loggers like any other (:mod:`._writer`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ParamSpec, TypeVar, cast

from lensing_ssc.core.base.exceptions import LoggingError

__all__ = ["EXACT_SAMPLES", "PerformanceLogger", "Timer", "TimingRecorder", "TimingStats"]

P = ParamSpec("P")
R = TypeVar("R")

#: Timings per name kept for exact percentiles; beyond it, a reservoir of this size.
EXACT_SAMPLES = 10_000


@dataclass(frozen=True)
class TimingStats:
    """Statistics of one timed operation, in seconds."""

    count: int
    failures: int
    total_s: float
    mean_s: float
    min_s: float
    p50_s: float
    p95_s: float
    max_s: float
    exact_percentiles: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready view."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class Timer:
    """A running timer from ``start_timer``; hand it (or its name) to ``end_timer``."""

    name: str
    started: float


def _percentile(ordered: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _Accumulator:
    __slots__ = ("count", "failures", "max", "min", "rng", "samples", "total")

    def __init__(self) -> None:
        self.count = self.failures = 0
        self.total = 0.0
        self.min = float("inf")
        self.max = 0.0
        self.samples: list[float] = []
        self.rng = random.Random(0x55C)

    def add(self, seconds: float, success: bool) -> None:
        self.count += 1
        self.failures += not success
        self.total += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)
        if len(self.samples) < EXACT_SAMPLES:
            self.samples.append(seconds)
        else:
            slot = self.rng.randrange(self.count)
            if slot < EXACT_SAMPLES:
                self.samples[slot] = seconds

    def stats(self) -> TimingStats:
        ordered = sorted(self.samples)
        return TimingStats(
            count=self.count,
            failures=self.failures,
            total_s=self.total,
            mean_s=self.total / self.count,
            min_s=self.min,
            p50_s=_percentile(ordered, 0.50),
            p95_s=_percentile(ordered, 0.95),
            max_s=self.max,
            exact_percentiles=self.count <= EXACT_SAMPLES,
        )


class TimingRecorder:
    """Thread-safe per-name timing statistics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, _Accumulator] = {}

    def add(self, name: str, seconds: float, *, success: bool = True) -> None:
        """Fold one duration into ``name``'s statistics."""
        with self._lock:
            acc = self._ops.get(name)
            if acc is None:
                acc = self._ops[name] = _Accumulator()
            acc.add(seconds, success)

    def snapshot(self) -> dict[str, TimingStats]:
        """Statistics of every name, sorted by name."""
        with self._lock:
            return {name: self._ops[name].stats() for name in sorted(self._ops)}


class PerformanceLogger:
    """Times code and logs the timings; ``LogManager.performance`` is one of these.

    Args:
        logger: Where timing records go.
        recorder: Where durations are aggregated.
        level: Level of timing records (overridable per call).
    """

    def __init__(self, logger: logging.Logger, recorder: TimingRecorder, level: int) -> None:
        self.logger = logger
        self.recorder = recorder
        self.level = level
        self._lock = threading.Lock()
        self._running: dict[str, list[Timer]] = {}

    def record(
        self,
        name: str,
        seconds: float,
        *,
        success: bool = True,
        level: int | None = None,
        **fields: Any,
    ) -> None:
        """Fold a duration measured elsewhere into the statistics and log it."""
        self.recorder.add(name, seconds, success=success)
        lvl = self.level if level is None else level
        if self.logger.isEnabledFor(lvl):
            outcome = "" if success else " (failed)"
            extra = {"timer": name, "duration_s": round(seconds, 6), "success": success}
            extra.update(fields)
            self.logger.log(lvl, "%s took %.3f s%s", name, seconds, outcome, extra=extra)

    @contextmanager
    def time_operation(
        self, name: str, *, level: int | None = None, **fields: Any
    ) -> Iterator[None]:
        """Time the ``with`` block; a block that raises is recorded as failed and re-raised.

        Example:
            >>> with log_mgr.performance.time_operation("batch_processing"):  # doctest: +SKIP
            ...     process(batch)
        """
        started = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.record(
                name,
                time.perf_counter() - started,
                success=False,
                level=level,
                error=type(exc).__name__,
                **fields,
            )
            raise
        self.record(name, time.perf_counter() - started, level=level, **fields)

    def time_function(
        self, name: str | None = None, *, level: int | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator timing every call of a function or coroutine function.

        Args:
            name: Name in records and statistics; defaults to the function's qualified name.
            level: Level of the timing records.

        Example:
            >>> @log_mgr.performance.time_function("expensive_operation")  # doctest: +SKIP
            ... def expensive_operation(): ...
        """

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            label: str = name or getattr(fn, "__qualname__", None) or repr(fn)
            if inspect.iscoroutinefunction(fn):
                afn = cast(Callable[P, Awaitable[Any]], fn)

                @functools.wraps(fn)
                async def atimed(*args: P.args, **kwargs: P.kwargs) -> Any:
                    with self.time_operation(label, level=level):
                        return await afn(*args, **kwargs)

                return cast(Callable[P, R], atimed)

            @functools.wraps(fn)
            def timed(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.time_operation(label, level=level):
                    return fn(*args, **kwargs)

            return timed

        return decorate

    def start_timer(self, name: str) -> Timer:
        """Start timing ``name``; ``end_timer`` takes the returned timer or the name."""
        timer = Timer(name, time.perf_counter())
        with self._lock:
            self._running.setdefault(name, []).append(timer)
        return timer

    def end_timer(
        self,
        timer: Timer | str,
        *,
        success: bool = True,
        level: int | None = None,
        **fields: Any,
    ) -> float:
        """Stop a timer (by name: the latest started), record and log it; returns seconds.

        Raises:
            LoggingError: when no timer of that name is running.
        """
        now = time.perf_counter()
        name = timer.name if isinstance(timer, Timer) else timer
        with self._lock:
            running = self._running.get(name, [])
            if isinstance(timer, Timer):
                found = any(t is timer for t in running)
                if found:
                    running.remove(timer)
            else:
                found = bool(running)
                if found:
                    timer = running.pop()
            if not running:
                self._running.pop(name, None)
        if not found or not isinstance(timer, Timer):
            raise LoggingError(
                f"no timer named {name!r} is running",
                value=name,
                hint="call start_timer(name) first, and end each timer once",
            )
        seconds = now - timer.started
        self.record(name, seconds, success=success, level=level, **fields)
        return seconds

    def stop_timer(self, name: str) -> float | None:
        """Stop the latest timer of ``name`` without logging or recording; ``None`` if none."""
        now = time.perf_counter()
        with self._lock:
            running = self._running.get(name)
            if not running:
                return None
            timer = running.pop()
            if not running:
                del self._running[name]
        return now - timer.started

    def running_timers(self) -> list[str]:
        """Names of timers started and not yet ended."""
        with self._lock:
            return sorted(self._running)
