"""``LogManager``: structured logs that never slow the work and never lose a line.

Loggers stay :mod:`logging` loggers (``get_logger`` returns one under ``lensing_ssc``; a
new one hands records over without a LogRecord where only this manager reads them,
:mod:`._direct`), so a call below the level costs what the stdlib's costs. A record at or
above the level is handed to a queue without formatting; the writer thread
(``lensing_ssc-log-writer``) formats it (``standard``, ``detailed`` or ``json``) and writes
it to the file, which rotates by size with gzip archives and retention by age, and to the
console. Context fields (``log_context``) follow the work through threads and tasks
(:func:`bind_context`); worker processes send their records to the parent's one writer
(``worker_config``/``attach_worker``, automatic after ``fork``). ``close()``, interpreter
exit and (when asked) SIGTERM write every record. Timing statistics live in
``performance`` and ``get_stats()``.

The parts a manager runs on are built, forked and closed by its base class, in
:mod:`._wiring`. Internals: :mod:`._context`, :mod:`._direct`, :mod:`._format`,
:mod:`._json`, :mod:`._writer`, :mod:`._sinks`, :mod:`._transport`, :mod:`._timing`,
:mod:`._loggers`, :mod:`._process_events`, :mod:`._settings`. User documentation:
``docs/log_manager.md``.

Example:
    >>> from lensing_ssc.processing.managers import LogManager
    >>> with LogManager(level="INFO", console=False) as log_mgr:
    ...     logger = log_mgr.get_logger("my_module")
    ...     with log_mgr.log_context(operation="data_processing", step="validation"):
    ...         logger.info("Validating input data")
    >>> logger.name
    'lensing_ssc.my_module'
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lensing_ssc.core.base.exceptions import LoggingError
from lensing_ssc.core.config import NOT_GIVEN, LoggingSection, NotGiven, resolve_settings
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log._context import (
    bind_context,
    current_context,
    log_context,
)
from lensing_ssc.processing.managers.log._direct import get_direct_logger
from lensing_ssc.processing.managers.log._settings import (
    LogStats,
    LogWorkerConfig,
    level_number,
)
from lensing_ssc.processing.managers.log._sinks import ConsoleSink, Sink, list_backups
from lensing_ssc.processing.managers.log._timing import Timer, TimingStats
from lensing_ssc.processing.managers.log._transport import ExecutorTopic, lines_of_event
from lensing_ssc.processing.managers.log._wiring import LogWiring
from lensing_ssc.processing.managers.log._workers import (
    connect_worker,
    make_worker_config,
    node_local_sink,
    open_log_file,
    worker_fields,
    worker_settings,
)

if TYPE_CHECKING:
    from types import TracebackType

    from lensing_ssc.core.config import ProcessingConfig

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

_PACKAGE = _log_loggers.PACKAGE_LOGGER
_WORKERS: dict[tuple[Any, str], LogManager] = {}


class LogManager(LogWiring):
    """Structured, asynchronous logging for a run; see the module docstring.

    Args:
        level: ``DEBUG``..``CRITICAL`` (any case) or a number; default ``INFO``.
        file_path: Log file (parents created); default ``config.log_file``, else no file.
        format_type: ``standard``, ``json`` or ``detailed``; default ``standard``.
        max_bytes: Rotate before the file passes this size; ``None``: never. Default 10 MiB.
        backup_count: Rotated files kept (default 5); ``0`` turns rotation off (as in the
            stdlib).
        console: Also write to stderr (default ``False``: a library stays quiet unless asked).
        compress_rotated: Gzip rotated files off the writer's path (default ``True``).
        retention_days: Delete rotated files older than this; ``None`` (default): keep.
        capture: Names of further loggers to write for (e.g. your own package); ``"root"``
            writes for every logger, as ``capture_root=True`` does: records of loggers
            made with ``logging.getLogger(__name__)`` in your code or another library.
        capture_root: Write for the root logger, i.e. every library (sets its level).
        propagate: Also pass ``lensing_ssc`` records on to the root logger's handlers.
        flush_interval: Seconds between the writer's rounds (the most a SIGKILL can lose);
            default 0.1.
        queue_size: Records waiting before callers wait for the writer (default 20000).
        timing_level: Level of timing records (default ``INFO``).
        handle_sigterm: Write every record on SIGTERM, then defer to the previous handler.
        config: A ``ProcessingConfig``; its ``logging`` section gives every setting not
            given here (arguments left ``None``; ``max_bytes`` and ``retention_days`` left
            out), else the section's defaults.

    Raises:
        ConfigError: a bad setting (an unknown level or format, a number out of range),
            naming the field (``logging.level``), the value and what is allowed.
        LoggingError: an unwritable log path; ``handle_sigterm`` outside the main thread.
    """

    def __init__(
        self,
        level: str | int | None = None,
        file_path: str | Path | None = None,
        format_type: str | None = None,
        *,
        max_bytes: int | NotGiven | None = NOT_GIVEN,
        backup_count: int | None = None,
        console: bool | None = None,
        compress_rotated: bool | None = None,
        retention_days: float | NotGiven | None = NOT_GIVEN,
        capture: Iterable[str] | None = None,
        capture_root: bool | None = None,
        propagate: bool | None = None,
        flush_interval: float | None = None,
        queue_size: int | None = None,
        timing_level: str | int | None = None,
        handle_sigterm: bool | None = None,
        config: ProcessingConfig | None = None,
    ) -> None:
        if file_path is None and config is not None:
            file_path = config.log_file
        settings = resolve_settings(
            LoggingSection,
            config,
            level=level,
            file=file_path,
            format=format_type,
            max_bytes=max_bytes,
            backup_count=backup_count,
            console=console,
            compress_rotated=compress_rotated,
            retention_days=retention_days,
            capture=capture,
            capture_root=capture_root,
            propagate=propagate,
            flush_interval=flush_interval,
            queue_size=queue_size,
            timing_level=timing_level,
            handle_sigterm=handle_sigterm,
        )
        if settings.handle_sigterm:
            _log_process.SigtermChain.check_main_thread()
        self._settings = settings
        self._archiver = None
        self._file = None
        sinks: list[Sink] = []
        if settings.file is not None:
            self._file, self._archiver = open_log_file(settings, self._report)
            sinks.append(self._file)
        if settings.console:
            sinks.append(ConsoleSink())
        self._setup(settings, sinks, worker=None)
        if self._archiver is not None:
            self._archiver.start()
        if settings.handle_sigterm:
            self._sigterm = _log_process.SigtermChain(self.flush)

    # -- loggers and context -------------------------------------------------------------
    def get_logger(self, name: str | None = None) -> logging.Logger:
        """The stdlib logger for ``name``, written by this manager.

        A new one is a :class:`~._direct.DirectLogger`: a ``logging.Logger`` that hands a
        record to the writer without building a LogRecord where nothing else would read it.

        A name already under ``lensing_ssc`` (or under a captured logger) is used as is;
        any other is put under ``lensing_ssc.`` (``"my_module"`` → ``lensing_ssc.my_module``).
        Calling it twice returns the same logger and adds nothing.

        Raises:
            LoggingError: when ``name`` is not a string.
        """
        if name is None or name == "":
            return get_direct_logger(_PACKAGE)
        if not isinstance(name, str):
            raise LoggingError(f"logger name must be a string, got {name!r}", value=name)
        covered = self._points == (_log_loggers.ROOT,) or any(
            name == point or name.startswith(point + ".") for point in self._points
        )
        return get_direct_logger(name if covered else f"{_PACKAGE}.{name}")

    @staticmethod
    def log_context(**fields: Any) -> Any:
        """Add ``fields`` to every record logged in the ``with`` block (this thread/task).

        Same as the module's :func:`log_context`; see :func:`bind_context` for threads.
        """
        return log_context(**fields)

    bind_context = staticmethod(bind_context)

    # -- timers and operations -----------------------------------------------------------
    def start_timer(self, name: str) -> Timer:
        """Start a timer; see ``performance.start_timer``."""
        return self.performance.start_timer(name)

    def end_timer(self, timer: Timer | str, *, success: bool = True, **fields: Any) -> float:
        """Stop a timer, log and record it; returns the seconds."""
        return self.performance.end_timer(timer, success=success, **fields)

    def log_operation_start(self, name: str, **fields: Any) -> None:
        """Log the start of operation ``name`` and start timing it."""
        self._ops.start(name, fields)

    def log_operation_end(self, name: str, success: bool = True, **fields: Any) -> float | None:
        """Log the end of ``name`` (ERROR if not ``success``); its seconds if started here."""
        return self._ops.end(name, success, fields)

    def log_performance_metric(self, name: str, value: Any, unit: str = "", **fields: Any) -> None:
        """Log a measured quantity (``metric``, ``value``, ``unit``); the last is in stats."""
        self._ops.metric(name, value, unit, fields)

    def log_error(
        self,
        error: BaseException | str,
        message: str | None = None,
        *,
        logger: str | None = None,
        **fields: Any,
    ) -> None:
        """Log an exception (type, message, traceback) or an error message at ERROR."""
        self._ops.error(error, message, self.get_logger(logger) if logger else None, fields)

    # -- handlers, statistics, status ----------------------------------------------------
    def add_handler(self, handler: logging.Handler) -> None:
        """Feed records to a stdlib handler too, on the writer thread (errors reported once)."""
        handler.handleError = self._pipeline.handler_error(handler)  # type: ignore[method-assign, assignment]
        self._pipeline.add_handler(handler)

    def get_stats(self) -> LogStats:
        """Counters, timing statistics per operation and the last value of each metric."""
        counts = self._pipeline.counts()
        return LogStats(
            records=counts.records,
            written=counts.written,
            from_workers=counts.from_workers,
            dropped=counts.dropped,
            errors=counts.errors,
            queued=counts.queued,
            rotations=self._file.rotations if self._file else 0,
            compressed=self._archiver.compressed if self._archiver else 0,
            timings=self._timings.snapshot(),
            metrics=self._ops.metrics(),
        )

    def get_status(self) -> dict[str, Any]:
        """JSON-ready snapshot: settings, state and ``get_stats()``."""
        s = self._settings
        return {
            "level": logging.getLevelName(level_number(s.level)),
            "format": s.format,
            "file": str(s.file) if s.file and self._worker is None else None,
            "console": s.console and self._worker is None,
            "worker": self._worker is not None,
            "closed": self._closed,
            "writer_alive": self._pipeline.running,
            "loggers": list(self._points),
            "stats": self.get_stats().to_dict(),
        }

    # -- processes -----------------------------------------------------------------------
    def worker_config(self, **fields: Any) -> LogWorkerConfig:
        """What a worker process needs to log through this manager's writer (picklable).

        Args:
            **fields: Written with every record of the workers (e.g. ``pool="maps"``).

        Raises:
            LoggingError: when the manager is closed.
        """
        with self._lock:
            if self._closed:
                raise LoggingError("this LogManager is closed", hint="create a new one")
            address, token = self._link.address()
        if self._worker is not None:
            fields = {**self._worker.fields, **fields}
        return make_worker_config(self._settings, address, token, fields)

    def executor_worker_config(self, **fields: Any) -> LogWorkerConfig:
        """What a Dask worker needs to log through this manager's writer, through Dask.

        Its address is an event topic (:class:`~._transport.ExecutorTopic`), not a socket:
        the worker sends its records as Dask events, which reach the driver wherever the
        worker runs, once the driver's Client subscribes :meth:`take_worker_event` to it
        (the task runner's Dask adapter does, given ``RunnerHooks.worker_events``).

        Raises:
            LoggingError: when the manager is closed.
        """
        with self._lock:
            if self._closed:
                raise LoggingError("this LogManager is closed", hint="create a new one")
            if self._executor_topic is None:
                self._executor_topic = ExecutorTopic(f"lensing_ssc-log-{uuid.uuid4().hex}")
            topic = self._executor_topic
        if self._worker is not None:
            fields = {**self._worker.fields, **fields}
        return make_worker_config(self._settings, topic, "", fields)

    def take_worker_event(self, event: Any) -> None:
        """Write the records of one Dask event ``(timestamp, records)`` from a worker."""
        if not self._closed:
            self._pipeline.push_lines(lines_of_event(event))

    @classmethod
    def attach_worker(cls, config: LogWorkerConfig) -> LogManager:
        """In a worker process: send this process's records to the parent's writer.

        Idempotent per process and parent; the worker's manager closes (and so writes
        everything) when the process exits, also through :mod:`multiprocessing`. Use it
        as a pool initializer:
        ``ProcessPoolExecutor(initializer=LogManager.attach_worker, initargs=(cfg,))``.

        A worker that cannot reach the parent's writer (on another node of a cluster, say)
        logs on its own instead, to ``workers/<host>-<pid>.log`` beside the parent's log
        file (stderr if that cannot be written), and says so once on stderr and in that log.
        A config from :meth:`executor_worker_config` sends through Dask instead, and needs
        no socket; outside a Dask worker it too falls back to that file.
        """
        key = (config.address, config.token)
        existing = _WORKERS.get(key)
        if existing is not None and not existing.closed:
            return existing
        self = cls.__new__(cls)
        unreachable: LoggingError | None = None
        sink: Sink
        try:
            sink = connect_worker(config, lambda what, exc: self._pipeline.report(what, exc))
        except LoggingError as exc:
            unreachable, sink = exc, node_local_sink(config)
        self._settings = worker_settings(config)
        self._file, self._archiver = None, None
        self._setup(
            self._settings, [sink], worker=dataclasses.replace(config, fields=worker_fields(config))
        )
        _WORKERS[key] = self
        if unreachable is not None:
            notice = f"{unreachable.message}; this process logs to {sink.label} instead"
            if not isinstance(sink, ConsoleSink):  # else the record below reaches stderr
                print(f"lensing_ssc: {notice}", file=sys.stderr, flush=True)
            self.get_logger("lensing_ssc.log").warning("%s", notice)
        _log_process.flush_at_worker_exit(self.close)
        return self

    @classmethod
    def flush_workers(cls) -> None:
        """In a worker process: hand every record logged so far to its sink, now.

        On Dask this sends them as events ahead of the task's result. Does nothing in a
        process with no attached worker manager.
        """
        for manager in list(_WORKERS.values()):
            if not manager.closed:
                manager.flush()

    # -- lifecycle (flush and close: LogWiring) ------------------------------------------
    def __enter__(self) -> LogManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "worker" if self._worker else (self._settings.file or "console")
        state = "closed" if self._closed else "open"
        level = logging.getLevelName(level_number(self._settings.level))
        return f"<LogManager {level} {where} ({state})>"
