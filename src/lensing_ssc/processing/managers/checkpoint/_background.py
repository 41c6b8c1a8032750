"""The background thread that writes asynchronous checkpoint saves, and its buffers.

The caller takes the snapshot (the state encoded, arrays copied) and hands a job to
:class:`BackgroundSaver`; one daemon thread, ``lensing_ssc-checkpoint-saver``, writes the
jobs in order and resolves their futures. At most ``max_pending`` snapshots wait in the
queue: a caller saving faster than the disk writes blocks in :meth:`submit` rather than
piling up copies of its state in memory. :meth:`close` lets queued jobs finish, then
stops and joins the thread. What a job does is the manager's business.

:class:`BufferPool` keeps the copy buffers of the last finished snapshot for the next one:
copying into memory already touched runs at memory speed, whereas fresh memory costs a
page fault per 4 KiB (several times the copy itself, more so in virtual machines).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import numpy as np

from lensing_ssc.core.base.exceptions import CheckpointError

__all__ = ["BackgroundSaver", "BufferPool"]

_STOP = object()


class BackgroundSaver:
    """Runs save jobs on one named daemon thread, in submission order.

    Args:
        name: The thread's name.
        max_pending: Jobs that may wait while one is being written.
    """

    def __init__(self, name: str = "lensing_ssc-checkpoint-saver", *, max_pending: int = 1) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._stopping = threading.Event()
        self._submit_lock = threading.Lock()  # orders submissions against close()
        self._count_lock = threading.Lock()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet finished."""
        return self._pending

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        """Queue ``job``; blocks while ``max_pending`` jobs already wait.

        Raises:
            CheckpointError: The saver is closed.
        """
        future: Future[Any] = Future()
        with self._submit_lock:
            if self._stopping.is_set():
                raise CheckpointError(
                    "cannot save asynchronously: the checkpoint manager is closed",
                    hint="save before close(), or use a new CheckpointManager",
                )
            with self._count_lock:
                self._pending += 1
            self._queue.put((job, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, future = item
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        result = job()
                    except BaseException as exc:  # handed to whoever waits on the future
                        future.set_exception(exc)
                    else:
                        future.set_result(result)
            finally:
                with self._count_lock:
                    self._pending -= 1

    def close(self) -> None:
        """Finish the queued jobs, then stop and join the thread. Idempotent."""
        with self._submit_lock:
            if not self._stopping.is_set():
                self._stopping.set()
                self._queue.put(_STOP)
        self._thread.join()


class BufferPool:
    """Flat byte buffers of the last finished snapshot, handed out again by size.

    Holds at most one snapshot's buffers: giving back a new set drops the old one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[int, list[np.ndarray[Any, Any]]] = {}

    @property
    def nbytes(self) -> int:
        """Bytes held for reuse."""
        with self._lock:
            return sum(size * len(buffers) for size, buffers in self._free.items())

    def take(self, nbytes: int) -> np.ndarray[Any, Any]:
        """A uint8 buffer of ``nbytes``: a kept one when there is one of that size."""
        with self._lock:
            buffers = self._free.get(nbytes)
            if buffers:
                return buffers.pop()
        return np.empty(nbytes, dtype=np.uint8)

    def give_back(self, buffers: Iterable[np.ndarray[Any, Any]]) -> None:
        """Keep ``buffers`` (a finished snapshot's) for reuse, dropping any kept before."""
        free: dict[int, list[np.ndarray[Any, Any]]] = {}
        for buffer in buffers:
            free.setdefault(int(buffer.nbytes), []).append(buffer)
        with self._lock:
            self._free = free

    def clear(self) -> None:
        """Release every kept buffer."""
        with self._lock:
            self._free = {}
