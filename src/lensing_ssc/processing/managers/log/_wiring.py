"""A ``LogManager``'s running parts, and their life: built, flushed, forked, taken apart.

:class:`LogWiring` is the base of :class:`~._manager.LogManager`. Its ``_setup`` builds
what a manager runs on from its settings and sinks: the pipeline whose writer thread
formats and writes records (:mod:`._writer`), the handler that queues them, attached to the
manager's loggers (:mod:`._loggers`), the link that receives worker processes' records
(:mod:`._workers`), and the timing and operation records (:mod:`._timing`,
:mod:`._operations`). A manager of the run's main process and one of a worker process
(``LogManager.attach_worker``) are built alike and differ in their sinks. Around a fork the
link opens its socket and the child forgets its parent's threads (:mod:`._process_events`);
``close`` writes every record, stops the threads and gives the loggers back.

What callers ask of a manager (loggers, context, timings, statistics, configs for worker
processes) is in :mod:`._manager`.
"""

from __future__ import annotations

import threading

from lensing_ssc.core.config import LoggingSection
from lensing_ssc.processing.managers.log import _loggers as _log_loggers
from lensing_ssc.processing.managers.log import _process_events as _log_process
from lensing_ssc.processing.managers.log._direct import get_direct_logger
from lensing_ssc.processing.managers.log._format import make_formatter
from lensing_ssc.processing.managers.log._operations import OperationLog
from lensing_ssc.processing.managers.log._settings import LogWorkerConfig, level_number
from lensing_ssc.processing.managers.log._sinks import Archiver, RotatingFileSink, Sink
from lensing_ssc.processing.managers.log._timing import PerformanceLogger, TimingRecorder
from lensing_ssc.processing.managers.log._transport import ExecutorTopic
from lensing_ssc.processing.managers.log._workers import WorkerLink
from lensing_ssc.processing.managers.log._writer import EnqueueHandler, LogPipeline

__all__ = ["LogWiring"]

_PACKAGE = _log_loggers.PACKAGE_LOGGER


class LogWiring:
    """The parts a log manager runs on; see the module docstring.

    ``LogManager.__init__`` and ``LogManager.attach_worker`` set the settings and the file
    parts, then call :meth:`_setup`, which sets the rest.
    """

    _settings: LoggingSection
    _file: RotatingFileSink | None
    _archiver: Archiver | None
    _sigterm: _log_process.SigtermChain | None
    # Set by _setup.
    _worker: LogWorkerConfig | None  # the manager's own config when it is a worker's
    _executor_topic: ExecutorTopic | None  # the Dask event topic of its workers, once asked
    _closed: bool
    _lock: threading.Lock
    _pipeline: LogPipeline
    _handler: EnqueueHandler
    _link: WorkerLink
    _points: tuple[str, ...]  # the loggers it writes for
    _timings: TimingRecorder
    performance: PerformanceLogger
    _ops: OperationLog

    def _report(self, what: str, exc: BaseException) -> None:
        """Tell the user once (on stderr) that logging to ``what`` failed with ``exc``."""
        self._pipeline.report(what, exc)

    def _setup(
        self, settings: LoggingSection, sinks: list[Sink], worker: LogWorkerConfig | None
    ) -> None:
        """Build the parts writing to ``sinks``, start the writer, attach to the loggers.

        ``worker`` is the manager's own config when it is a worker process's.
        """
        self._worker = worker
        self._executor_topic = None
        self._closed = False
        self._lock = threading.Lock()
        self._sigterm = None
        level = level_number(settings.level)
        formatter = make_formatter(settings.format)
        if worker is not None:
            formatter.static_fields = dict(worker.fields)
        self._pipeline = LogPipeline(
            formatter,
            sinks,
            flush_interval=settings.flush_interval,
            queue_size=settings.queue_size,
        )
        self._handler = EnqueueHandler(self._pipeline, level)
        self._link = WorkerLink(self._pipeline, self._handler, worker, self.close)
        self._points = _log_loggers.attachment_points(settings.capture, settings.capture_root)
        self._timings = TimingRecorder()
        self.performance = PerformanceLogger(
            get_direct_logger(f"{_PACKAGE}.performance"),
            self._timings,
            level_number(settings.timing_level),
        )
        self._ops = OperationLog(
            get_direct_logger(f"{_PACKAGE}.operations"),
            get_direct_logger(f"{_PACKAGE}.errors"),
            self.performance,
            self._timings,
        )
        self._pipeline.start()
        at_root = self._points == (_log_loggers.ROOT,)
        entry = _log_loggers.Attachment(
            self._handler, level, None if at_root else settings.propagate
        )
        for name in self._points:
            _log_loggers.attach(name, entry)
        _log_process.register(self)

    def flush(self) -> None:
        """Write every record logged before this call, on the calling thread."""
        self._pipeline.flush()

    def close(self) -> None:
        """Write every record, stop the threads, restore the loggers (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _log_loggers.detach(self._handler)
        if self._sigterm is not None:
            self._sigterm.restore()
        self._link.close(grace=1.0)
        self._pipeline.stop()
        self._pipeline.close_sinks()
        if self._archiver is not None:
            self._archiver.close()
        _log_process.unregister(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def _before_fork(self) -> None:
        if not self._closed:
            self._link.before_fork()

    def _after_fork_in_parent(self) -> None:
        if not self._closed:
            self._link.after_fork_in_parent()

    def _after_fork_in_child(self) -> None:
        self._pipeline.reset_after_fork()
        self._lock = threading.Lock()
        if not self._closed:
            self._file, self._archiver, self._sigterm = None, None, None
            self._link.after_fork_in_child()
