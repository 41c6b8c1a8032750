"""The LogManager: structured logs for people and machines, from every process of a run.

Private parts: :mod:`._format` (the three formats) and :mod:`._json` (JSON values, orjson
or not), :mod:`._direct` (loggers that queue records without a LogRecord), :mod:`._writer`
and :mod:`._sinks` (the writer thread and where records go), :mod:`._context` (bound
fields), :mod:`._loggers`,
:mod:`._timing` and :mod:`._operations` (timed spans, metrics), :mod:`._workers`,
:mod:`._transport` and :mod:`._process_events` (records of other processes; exit, fork and
SIGTERM), :mod:`._settings`. The manager itself is in :mod:`._manager`, over the parts it
runs on, built and taken apart in :mod:`._wiring`.
"""

from ._manager import (
    LogManager,
    LogStats,
    LogWorkerConfig,
    Timer,
    TimingStats,
    bind_context,
    current_context,
    list_backups,
    log_context,
)

__all__ = [
    "LogManager",
    "LogStats",
    "LogWorkerConfig",
    "Timer",
    "TimingStats",
    "bind_context",
    "current_context",
    "list_backups",
    "log_context",
]
