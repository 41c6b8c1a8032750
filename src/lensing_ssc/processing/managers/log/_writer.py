"""The queue between the callers and the writer thread: :class:`LogPipeline`.

The caller's side is :class:`EnqueueHandler`, a :class:`logging.Handler` whose ``handle``
takes no lock and formats nothing: it renders ``msg % args`` (cheap, and it freezes
arguments the caller might mutate later), attaches the context mapping, and appends the
record to a :class:`collections.deque`. Unlike :class:`logging.handlers.QueueHandler` it
neither copies the record nor formats it (``prepare()``). A
:class:`~._direct.DirectLogger` skips the LogRecord and queues a tuple through
:meth:`EnqueueHandler.put` instead, while the pipeline ``takes_tuples``.

The writer thread (``lensing_ssc-log-writer``) wakes every ``flush_interval`` seconds, or
as soon as half the queue is used, formats records into lines and writes each batch to
every sink with one call. ``flush()`` drains the queue on the calling thread, under the
same lock, so when it returns every record logged before the call has been handed to the
operating system. A full queue (``queue_size`` records waiting) makes callers wait for the
writer instead of losing records; records are dropped (and counted) only when no writer
is running, or when a sink fails to take them: a record counts as written once every sink
took it whole (a sink that fails part-way says how many it took). A failing sink or user
handler is reported once on stderr and counted; it never raises into the code that logs.

Sinks are :mod:`._sinks`; the socket to a parent process is :mod:`._transport`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lensing_ssc.processing.managers.log._context import CONTEXT_ATTR, context_getter
from lensing_ssc.processing.managers.log._format import (
    RecordFormatter,
    RecordTuple,
    one_line,
    record_of,
    safe_str,
)
from lensing_ssc.processing.managers.log._sinks import PartialWriteError, Sink

__all__ = ["WRITER_THREAD_NAME", "EnqueueHandler", "LogPipeline", "PipelineCounts"]

WRITER_THREAD_NAME = "lensing_ssc-log-writer"
_BATCH = 2048
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class PipelineCounts:
    """Counters of a pipeline at one moment (see ``LogManager.get_stats``)."""

    records: dict[str, int]
    written: int
    from_workers: int
    dropped: int
    errors: int
    queued: int


class EnqueueHandler(logging.Handler):
    """Hands records to a :class:`LogPipeline` without formatting or locking."""

    def __init__(self, pipeline: LogPipeline, level: int) -> None:
        super().__init__(level)
        self.pipeline = pipeline
        self._queue = pipeline.queue
        self._high_water = pipeline.high_water

    def handle(self, record: logging.LogRecord) -> bool:
        if self.filters and not self.filter(record):
            return False
        if record.args:
            try:
                record.msg = record.getMessage()
            except Exception as exc:  # a caller's bad format string must not raise here
                record.msg = f"<unformattable message {safe_str(record.msg)!r}: {exc!r}>"
            record.args = None
        record.__dict__[CONTEXT_ATTR] = context_getter()
        queue = self._queue
        queue.append(record)
        if len(queue) >= self._high_water:
            self.pipeline.on_high_water()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def put(self, item: RecordTuple) -> None:
        """Queue a record that a :class:`~._direct.DirectLogger` made (no filters here)."""
        queue = self._queue
        queue.append(item)
        if len(queue) >= self._high_water:
            self.pipeline.on_high_water()

    def flush(self) -> None:
        """Drain the pipeline (``logging.shutdown`` calls this at exit)."""
        self.pipeline.flush()

    def set_high_water(self, value: int) -> None:
        self._high_water = value


class LogPipeline:
    """Queue, writer thread, formatter and sinks of one manager.

    Args:
        formatter: Turns a record into a line.
        sinks: Where lines go, in order.
        flush_interval: Seconds between the writer's wake-ups.
        queue_size: Records waiting before callers wait for the writer.
    """

    def __init__(
        self,
        formatter: RecordFormatter,
        sinks: Iterable[Sink],
        *,
        flush_interval: float,
        queue_size: int,
    ) -> None:
        self.queue: deque[logging.LogRecord | RecordTuple | bytes] = deque()
        self.formatter = formatter
        self.sinks: list[Sink] = list(sinks)
        self.handlers: list[logging.Handler] = []
        #: Whether callers may queue tuples: the format needs no LogRecord, nor do handlers.
        self.takes_tuples = formatter.takes_tuples
        self.flush_interval = flush_interval
        self.queue_size = queue_size
        self.high_water = max(1, queue_size // 2)
        #: Called on the first record after a fork (set by the manager), see on_high_water.
        self.on_first_record_after_fork: Callable[[], None] | None = None
        self._init_sync()
        self._counts = dict.fromkeys(_LEVELS, 0)
        self._written = self._from_workers = self._dropped = self._errors = 0
        self._reported: set[str] = set()
        self._thread: threading.Thread | None = None

    def _init_sync(self) -> None:
        self._io_lock = threading.RLock()
        self._drainer: int | None = None
        self._wake = threading.Event()
        self._space = threading.Event()
        self._stop = threading.Event()

    # -- writer thread -------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=WRITER_THREAD_NAME, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.drain()
            except Exception as exc:  # the writer must outlive any surprise; say so once
                self.report("writer", exc)

    def stop(self) -> None:
        """Stop and join the writer thread, then write what is left."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.drain()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- callers' slow path --------------------------------------------------------------
    def on_high_water(self) -> None:
        """Wake the writer; wait for room when the queue is full and a writer runs."""
        hook = self.on_first_record_after_fork
        if hook is not None:
            self.on_first_record_after_fork = None
            hook()
        self._wake.set()
        thread = self._thread
        while len(self.queue) >= self.queue_size:
            me = threading.get_ident()
            if thread is None or not thread.is_alive() or thread.ident == me or self._drainer == me:
                if not self.running:
                    self._drop_overflow()
                return
            self._space.clear()
            self._wake.set()
            self._space.wait(0.05)

    def _drop_overflow(self) -> None:
        with self._io_lock:
            while len(self.queue) > self.queue_size:
                self.queue.popleft()
                self._dropped += 1

    def push_lines(self, lines: list[bytes]) -> None:
        """Enqueue records formatted by a worker process (from the receiver thread)."""
        self.queue.extend(lines)
        if len(self.queue) >= self.high_water:
            self.on_high_water()

    # -- draining ------------------------------------------------------------------------
    def drain(self) -> None:
        """Format and write everything queued so far, on the calling thread."""
        with self._io_lock:
            outer, self._drainer = self._drainer, threading.get_ident()
            try:
                queue = self.queue
                while queue:
                    batch = [queue.popleft() for _ in range(min(len(queue), _BATCH))]
                    self._write_batch(batch)
                    self._space.set()
            finally:
                self._drainer = outer

    def flush(self) -> None:
        """Write every record logged before this call (drains on the calling thread)."""
        self.drain()

    def add_handler(self, handler: logging.Handler) -> None:
        """Feed records to ``handler`` too, on the writer thread (LogRecords from now on)."""
        self.takes_tuples = False
        self.handlers.append(handler)

    def _write_batch(self, batch: list[logging.LogRecord | RecordTuple | bytes]) -> None:
        fmt = self.formatter
        handlers = list(self.handlers)
        feed = bool(handlers)
        lines: list[bytes] = []
        records: list[logging.LogRecord] = []
        counts = self._counts
        from_workers = 0
        for item in batch:
            record: Any = item
            kind = type(record)
            if kind is bytes:
                lines.append(record)
                from_workers += 1
                continue
            if kind is tuple:
                name, level = record[2], logging.getLevelName(record[1])
                try:
                    lines.append(fmt.tuple_line(record))
                except Exception as exc:  # formatters are defensive; this is the last resort
                    lines.append(self._unformattable(name, exc))
                if feed:  # a handler added after this record was queued
                    records.append(record_of(record))
            else:
                name, level = record.name, record.levelname
                try:
                    lines.append(fmt.line(record))
                except Exception as exc:  # formatters are defensive; this is the last resort
                    lines.append(self._unformattable(name, exc))
                if feed:
                    records.append(record)
            counts[level] = counts.get(level, 0) + 1
        self._from_workers += from_workers
        taken = len(batch)  # by every sink, whole
        for sink in self.sinks:
            try:
                sink.write(lines)
            except PartialWriteError as exc:  # a full disk: the records before it are in
                taken = min(taken, exc.written)
                self._errors += 1
                self.report(sink.label, exc.__cause__ or exc)
            except Exception as exc:  # disk full, closed stream, gone parent: report once
                taken = 0
                self._errors += 1
                self.report(sink.label, exc)
        self._written += taken
        self._dropped += len(batch) - taken
        for handler in handlers:
            self._feed(handler, records)

    def _unformattable(self, name: str, exc: Exception) -> bytes:
        self.report("formatter", exc)
        text = one_line(f"<unformattable record from {name}: {exc!r}>")
        return (text + "\n").encode("utf-8", "backslashreplace")

    def _feed(self, handler: logging.Handler, records: list[logging.LogRecord]) -> None:
        for record in records:
            if record.levelno < handler.level:
                continue
            try:
                handler.handle(record)
            except Exception as exc:  # a user handler's bug must not stop the writer
                self._errors += 1
                self.report(f"handler {handler!r}", exc)

    # -- errors ----------------------------------------------------------------------------
    def report(self, what: str, exc: BaseException) -> None:
        """Tell the user once per ``what`` on stderr; count every occurrence."""
        if what in self._reported:
            return
        self._reported.add(what)
        text = (
            f"lensing_ssc: logging to {what} failed: {type(exc).__name__}: {exc}; "
            "the program continues, and failed records are counted as dropped in "
            "LogManager.get_stats() (shown once)\n"
        )
        for stream in (sys.stderr, sys.__stderr__):
            if stream is None:
                continue
            try:
                stream.write(text)
                stream.flush()
                return
            except (OSError, ValueError):
                continue

    def handler_error(self, handler: logging.Handler) -> Callable[[logging.LogRecord], None]:
        """A ``handleError`` for a user handler: report once instead of a traceback each time."""

        def handle_error(record: logging.LogRecord) -> None:
            self._errors += 1
            exc = sys.exc_info()[1] or RuntimeError("unknown error")
            self.report(f"handler {handler!r}", exc)

        return handle_error

    # -- lifecycle -------------------------------------------------------------------------
    def counts(self) -> PipelineCounts:
        return PipelineCounts(
            records=dict(self._counts),
            written=self._written,
            from_workers=self._from_workers,
            dropped=self._dropped,
            errors=self._errors,
            queued=len(self.queue),
        )

    def close_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except OSError as exc:
                self.report(sink.label, exc)
        for handler in self.handlers:
            handler.close()

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's queue, thread and locks."""
        self.queue.clear()
        self._init_sync()
        self._thread = None
