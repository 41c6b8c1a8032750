"""Records about the run itself: operation start and end, metrics, errors.

:class:`OperationLog` backs ``LogManager.log_operation_start``/``log_operation_end``
(a timed span whose duration goes into the timing statistics under the operation's name),
``log_performance_metric`` (the last value of each metric is kept for ``get_stats()``)
and ``log_error`` (an exception with its traceback, or a message). Records carry their
data as fields (``operation``, ``event``, ``success``, ``duration_s``, ``metric``,
``value``, ``unit``) so JSON logs can be queried. Timing of arbitrary code is
:mod:`._timing`.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from lensing_ssc.processing.managers.log._format import safe_str
from lensing_ssc.processing.managers.log._timing import PerformanceLogger, TimingRecorder

__all__ = ["OperationLog", "safe_extra"]

_RESERVED_EXTRA = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def safe_extra(fields: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    """Fields as ``extra=``, renaming names the stdlib reserves (``module`` → ``module_``)."""
    merged = {**fields, **fixed}
    if _RESERVED_EXTRA.isdisjoint(merged):
        return merged
    return {f"{k}_" if k in _RESERVED_EXTRA else k: v for k, v in merged.items()}


class OperationLog:
    """Operation, metric and error records of one manager.

    Args:
        logger: Logger of operation and metric records (``lensing_ssc.operations``).
        errors: Logger of ``log_error`` records (``lensing_ssc.errors``).
        performance: Keeps the running operation timers.
        recorder: Receives operation durations.
    """

    def __init__(
        self,
        logger: logging.Logger,
        errors: logging.Logger,
        performance: PerformanceLogger,
        recorder: TimingRecorder,
    ) -> None:
        self._logger = logger
        self._errors = errors
        self._performance = performance
        self._recorder = recorder
        self._lock = threading.Lock()
        self._metrics: dict[str, dict[str, Any]] = {}

    def start(self, name: str, fields: dict[str, Any]) -> None:
        self._performance.start_timer(f"operation:{name}")
        extra = safe_extra(fields, operation=name, event="operation_start")
        self._logger.info("operation %s started", name, extra=extra)

    def end(self, name: str, success: bool, fields: dict[str, Any]) -> float | None:
        seconds = self._performance.stop_timer(f"operation:{name}")
        extra = safe_extra(fields, operation=name, event="operation_end", success=success)
        level = logging.INFO if success else logging.ERROR
        outcome = "finished" if success else "failed"
        if seconds is None:
            self._logger.log(level, "operation %s %s", name, outcome, extra=extra)
            return None
        self._recorder.add(name, seconds, success=success)
        extra["duration_s"] = round(seconds, 6)
        self._logger.log(level, "operation %s %s after %.3f s", name, outcome, seconds, extra=extra)
        return seconds

    def metric(self, name: str, value: Any, unit: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self._metrics[name] = {"value": value, "unit": unit}
        extra = safe_extra(fields, metric=name, value=value, unit=unit)
        self._logger.info("%s = %s%s", name, value, f" {unit}" if unit else "", extra=extra)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Last value and unit of each metric; values JSON cannot hold become strings."""
        with self._lock:
            items = sorted(self._metrics.items())
        return {
            name: {
                "value": v["value"]
                if isinstance(v["value"], (int, float, str, type(None)))
                else safe_str(v["value"]),
                "unit": v["unit"],
            }
            for name, v in items
        }

    def error(
        self,
        error: BaseException | str,
        message: str | None,
        logger: logging.Logger | None,
        fields: dict[str, Any],
    ) -> None:
        exc_info: Any
        if isinstance(error, BaseException):
            exc_info = (type(error), error, error.__traceback__)
            text = message or f"{type(error).__name__}: {error}"
        else:
            exc_info = sys.exc_info() if sys.exc_info()[0] is not None else None
            text = error if message is None else f"{error}: {message}"
        (logger or self._errors).error("%s", text, exc_info=exc_info, extra=safe_extra(fields))
