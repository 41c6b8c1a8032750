"""A manager's links outside its process: the parent's socket, a worker's sink, the file.

:class:`WorkerLink` owns the parent side (the receiver from :func:`~._transport.open_receiver`,
opened on ``worker_config()`` or just before a ``fork``) and the child side after a fork
(connect to the parent on the first record, then write through a
:class:`~._transport.ParentSink`; fall back to stderr if the parent cannot be reached).
:func:`connect_worker` and :func:`worker_settings` build a worker's sink and settings
from a :class:`~._settings.LogWorkerConfig` for ``LogManager.attach_worker`` (a
:class:`~._transport.ExecutorSink` when the config names a Dask topic rather than a socket,
and then with the worker's ``host`` and ``pid`` in every record);
:func:`node_local_sink` is that worker's own file (``workers/<host>-<pid>.log`` beside the
parent's log, in the run directory's ``logs/``) when the parent cannot be reached (another
node of a cluster has no view of the parent's socket), so its items run and its records are
kept either way; :func:`make_worker_config` builds the config a parent hands out;
:func:`open_log_file` opens the parent's file sink and archiver from its settings.
The wire format is in :mod:`._transport`, the socket and its thread in
:mod:`lensing_ssc.processing.managers._channel`; process hooks in :mod:`._process_events`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lensing_ssc.core.base.exceptions import LoggingError
from lensing_ssc.core.config import LoggingSection
from lensing_ssc.processing.managers._channel import ChannelError, ChannelServer
from lensing_ssc.processing.managers.log._process_events import flush_at_worker_exit
from lensing_ssc.processing.managers.log._settings import LogWorkerConfig, rotates
from lensing_ssc.processing.managers.log._sinks import (
    Archiver,
    ConsoleSink,
    RotatingFileSink,
    Sink,
)
from lensing_ssc.processing.managers.log._transport import (
    ExecutorSink,
    ExecutorTopic,
    ParentSink,
    open_receiver,
)
from lensing_ssc.processing.managers.log._writer import EnqueueHandler, LogPipeline

__all__ = [
    "WORKER_LOG_DIR",
    "WorkerLink",
    "connect_worker",
    "make_worker_config",
    "node_local_sink",
    "open_log_file",
    "worker_fields",
    "worker_settings",
]

WORKER_LOG_DIR = "workers"
"""Directory, beside the parent's log file, of the logs of workers that cannot reach it."""

Report = Callable[[str, BaseException], None]


class WorkerLink:
    """Parent socket and fork handling of one manager.

    Args:
        pipeline: The manager's pipeline (records from workers go into its queue).
        handler: The manager's handler (its high-water mark triggers the post-fork connect).
        worker: The manager's own worker config when it is itself a worker, else ``None``.
        on_exit: What a forked child calls when it exits (the manager's ``close``).
    """

    def __init__(
        self,
        pipeline: LogPipeline,
        handler: EnqueueHandler,
        worker: LogWorkerConfig | None,
        on_exit: Callable[[], None],
    ) -> None:
        self._pipeline = pipeline
        self._handler = handler
        self._worker = worker
        self._on_exit = on_exit
        self._receiver: ChannelServer | None = None
        self._parent: tuple[Any, str] | None = None

    def address(self) -> tuple[Any, str]:
        """``(address, token)`` workers connect to; opens the parent socket if needed."""
        if self._worker is not None:
            return self._worker.address, self._worker.token
        receiver = self._open()
        receiver.start()
        return receiver.address, receiver.token

    def _open(self) -> ChannelServer:
        if self._receiver is None:
            self._receiver = open_receiver(self._pipeline.push_lines, self._pipeline.report)
        return self._receiver

    def before_fork(self) -> None:
        if self._worker is None and self._receiver is None:
            try:
                self._open()
            except OSError as exc:
                self._pipeline.report("the worker socket", exc)

    def after_fork_in_parent(self) -> None:
        if self._receiver is not None:
            self._receiver.start()

    def after_fork_in_child(self) -> None:
        """Drop the parent's file and socket; connect to the parent on the first record."""
        for sink in self._pipeline.sinks:
            if isinstance(sink, (RotatingFileSink, ParentSink)):
                sink.close()  # closes this process's copy of the descriptor only
        self._pipeline.sinks = []
        if self._worker is not None:
            self._parent = (self._worker.address, self._worker.token)
        elif self._receiver is not None:
            self._parent = (self._receiver.address, self._receiver.token)
            self._receiver.abandon()
            self._receiver = None
        self._pipeline.on_first_record_after_fork = self._connect_after_fork
        self._handler.set_high_water(0)

    def _connect_after_fork(self) -> None:
        sink: Sink
        try:
            if self._parent is None:
                raise ConnectionError("the parent process had no worker socket")
            sink = ParentSink(*self._parent, self._pipeline.report)
        except OSError as exc:
            self._pipeline.report("the parent's log writer", exc)
            sink = ConsoleSink()
        self._pipeline.sinks = [sink]
        self._handler.set_high_water(self._pipeline.high_water)
        self._pipeline.start()
        flush_at_worker_exit(self._on_exit)

    def close(self, grace: float) -> None:
        """Receive what workers still send (until they hang up or ``grace`` s of silence)."""
        if self._receiver is not None:
            self._receiver.close(grace)
            self._receiver = None


def connect_worker(config: LogWorkerConfig, report: Report) -> ParentSink | ExecutorSink:
    """A sink to the parent's writer: through Dask for a topic, else the local socket.

    Raises:
        LoggingError: when the parent's writer cannot be reached.
    """
    address = config.address
    try:
        if isinstance(address, ExecutorTopic):
            return ExecutorSink(address, report)
        return ParentSink(address, config.token, report)
    except ChannelError as exc:
        raise LoggingError(
            f"cannot reach the parent's log writer: {exc.message}",
            value=address,
            hint="is the parent's LogManager still open?",
        ) from exc
    except ConnectionError as exc:  # a Dask topic outside a Dask worker
        raise LoggingError(
            f"cannot reach the parent's log writer: {exc}",
            value=address,
            hint="a Dask topic is for Dask workers; other processes take worker_config()",
        ) from exc


def worker_fields(config: LogWorkerConfig) -> dict[str, Any]:
    """Fields of every record of this worker: the parent's, and where it runs on Dask.

    A record that travels through Dask may come from any node, so it names its ``host``
    and ``pid``; a local worker's records are the parent's machine's.
    """
    if isinstance(config.address, ExecutorTopic):
        return {**config.fields, "host": socket.gethostname(), "pid": os.getpid()}
    return dict(config.fields)


def node_local_sink(config: LogWorkerConfig) -> Sink:
    """This worker process's own log, for when the parent's writer cannot be reached.

    The file ``workers/<host>-<pid>.log`` in the directory of the parent's log file (the
    run directory's ``logs/``, on a shared filesystem the driver's user reads too); stderr
    when the parent has no log file or that directory is not writable from here.
    """
    parent_file = config.settings.file
    if parent_file is None:
        return ConsoleSink()
    name = f"{socket.gethostname()}-{os.getpid()}.log"
    path = Path(parent_file).parent / WORKER_LOG_DIR / name
    try:
        return RotatingFileSink(path, max_bytes=None, archiver=None)
    except OSError:  # a directory this node cannot write: the worker's stderr keeps them
        return ConsoleSink()


def worker_settings(config: LogWorkerConfig) -> LoggingSection:
    """Settings of a worker's manager: the parent's, without a file, a console or SIGTERM."""
    return config.settings.model_copy(
        update={
            "file": None,
            "console": False,
            "max_bytes": None,
            "backup_count": 0,
            "compress_rotated": False,
            "retention_days": None,
            "handle_sigterm": False,
        }
    )


def make_worker_config(
    settings: LoggingSection, address: Any, token: str, fields: dict[str, Any]
) -> LogWorkerConfig:
    """The config a parent with ``settings`` hands to its workers."""
    return LogWorkerConfig(address=address, token=token, settings=settings, fields=fields)


def open_log_file(
    settings: LoggingSection, report: Report
) -> tuple[RotatingFileSink, Archiver | None]:
    """The parent's file sink and (when rotating or pruning) its archiver, not yet started.

    Raises:
        LoggingError: when the file cannot be created or opened for appending.
    """
    path = settings.file
    if path is None:
        raise LoggingError("no log file configured", hint="pass file_path=...")
    rotating = rotates(settings)
    archiver = None
    if rotating or settings.retention_days is not None:
        archiver = Archiver(
            path,
            compress=settings.compress_rotated and rotating,
            backup_count=settings.backup_count if rotating else None,
            retention_days=settings.retention_days,
            report=report,
        )
    try:
        sink = RotatingFileSink(
            path, max_bytes=settings.max_bytes if rotating else None, archiver=archiver
        )
    except OSError as exc:
        raise LoggingError(
            f"cannot open log file {str(path)!r} for writing: {exc.strerror or exc}",
            value=str(path),
            hint="choose a writable path, or file_path=None for console only",
        ) from exc
    return sink, archiver
