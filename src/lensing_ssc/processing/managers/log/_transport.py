"""Records of worker processes travel to the parent's one writer over a local channel.

Several processes of one run must not each append to and rotate the same file: lines would
interleave, rotations would race, and records would be lost or doubled. Instead the parent
opens a receiver (:func:`open_receiver`), and each worker's pipeline writes through a
:class:`ParentSink`: the worker formats its own records (its context, its extras) and
sends them as frames, a 4-byte big-endian length and the record. The receiver thread
(``lensing_ssc-log-receiver``) pushes each frame, one record, into the parent's queue, so
the parent's writer rotates and archives for everyone and every record is written once.

A worker that loses its parent (the parent died) reports it once and writes its remaining
records to its own stderr, which batch systems keep, instead of dropping them.

On Dask the socket is not used at all (a worker on another host cannot reach it): the
config a worker gets names an :class:`ExecutorTopic` instead of an address, and the
worker's :class:`ExecutorSink` sends each batch of formatted records as one Dask event on
that topic (:mod:`lensing_ssc.processing.managers._executor_events`); the driver's
handler (:func:`lines_of_event`) pushes them into the same queue as the receiver's.

This module is the log's wire format only: the socket, its token, the receiver thread and
what happens across ``fork`` are :mod:`lensing_ssc.processing.managers._channel`'s.
Workers are set up by ``LogManager.attach_worker`` (any start method) or automatically in
``fork`` children; see :mod:`lensing_ssc.processing.managers.log._workers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lensing_ssc.processing.managers._channel import (
    ChannelClient,
    ChannelError,
    ChannelServer,
    Report,
)
from lensing_ssc.processing.managers._executor_events import current_dask_worker, send_event
from lensing_ssc.processing.managers.log._sinks import ConsoleSink

__all__ = [
    "RECEIVER_THREAD_NAME",
    "ExecutorSink",
    "ExecutorTopic",
    "ParentSink",
    "lines_of_event",
    "open_receiver",
]

RECEIVER_THREAD_NAME = "lensing_ssc-log-receiver"
_LENGTH_BYTES = 4


def open_receiver(push: Callable[[list[bytes]], None], report: Report) -> ChannelServer:
    """The parent's end, bound but not started: each worker's records go to ``push``.

    Args:
        push: Receives a list of complete records (bytes ending in a newline).
        report: Called with ``(what, exception)`` when something goes wrong.

    Raises:
        ChannelError: no socket could be bound.
    """

    def read_frames(buffer: bytearray) -> None:
        records: list[bytes] = []
        pos, end = 0, len(buffer)
        while end - pos >= _LENGTH_BYTES:
            start = pos + _LENGTH_BYTES
            size = int.from_bytes(buffer[pos:start], "big")
            if end - start < size:
                break
            records.append(bytes(buffer[start : start + size]))
            pos = start + size
        if pos:
            del buffer[:pos]
        if records:
            push(records)

    return ChannelServer(read_frames, name=RECEIVER_THREAD_NAME, report=report)


class ParentSink:
    """A worker's sink: sends records to the parent's receiver.

    Raises:
        ChannelError: at construction when the parent cannot be reached (an ``OSError``).
    """

    def __init__(
        self,
        address: Any,
        token: str,
        report: Report,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.label = f"the parent process's log writer at {address!r}"
        self._report = report
        self._fallback: ConsoleSink | None = None
        self._client = ChannelClient(address, token, timeout=timeout)
        self._client.connect()

    def write(self, lines: list[bytes]) -> None:
        if self._fallback is None:
            payload = b"".join([len(line).to_bytes(_LENGTH_BYTES, "big") + line for line in lines])
            try:
                self._client.send(payload)
                return
            except ChannelError as exc:
                self._report(self.label, exc)
                self._fallback = ConsoleSink()
        self._fallback.write(lines)

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class ExecutorTopic:
    """The address of a driver reached through the executor: a Dask event topic.

    Attributes:
        topic: The event topic the driver subscribes to (``lensing_ssc-log-<hex>``).
    """

    topic: str


class ExecutorSink:
    """A Dask worker's sink: each batch of records is one event on the driver's topic.

    Raises:
        OSError: at construction, outside a Dask worker (the caller falls back).
    """

    def __init__(self, topic: ExecutorTopic, report: Report) -> None:
        worker = current_dask_worker()
        if worker is None:
            raise ConnectionError(f"no Dask worker in this process to send {topic.topic!r}")
        self.label = f"the driver's log writer through Dask topic {topic.topic!r}"
        self._worker = worker
        self._topic = topic.topic
        self._report = report
        self._fallback: ConsoleSink | None = None

    def write(self, lines: list[bytes]) -> None:
        if self._fallback is None:
            if send_event(self._worker, self._topic, lines):
                return
            self._report(
                self.label,
                ConnectionError("the Dask worker is closing; records go to stderr"),
            )
            self._fallback = ConsoleSink()
        self._fallback.write(lines)

    def close(self) -> None:
        """Nothing to close: the worker's connection is Dask's."""


def lines_of_event(event: Any) -> list[bytes]:
    """The records of one event ``(timestamp, lines)`` as the driver's handler receives it."""
    _, lines = event
    return [bytes(line) for line in lines]
