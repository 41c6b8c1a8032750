"""Progress reports from worker processes to the parent's ``ProgressManager``.

``ProgressTask.reporter()`` hands out a :class:`ProgressReporter`: a small picklable handle
(an address, a random token and a task id) that a worker process — a ``multiprocessing``
pool, a ``ProcessPoolExecutor``, a forked child — calls ``.update(n)`` on. Each call sends
one 16-byte record over a local socket (a Unix socket in a private directory; loopback TCP
where Unix sockets do not exist); the parent's :class:`ReportServer` reads them on a
background thread and adds them to the task. Nothing is buffered in the worker, so a count
is in the parent's socket buffer when ``update`` returns; ``drain()`` (called by
``get_status()`` and when a task closes) reads whatever has arrived, which keeps counts exact.

Reporters reach processes on the same machine only; for a Dask cluster, report from the
futures' completion in the parent instead.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import selectors
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from lensing_ssc.processing.managers.progress._clock import Number, check_amount

__all__ = ["ProgressReporter", "ReportServer"]

_RECORD = struct.Struct("<Qd")  # task id, amount
_TOKEN_BYTES = 16
_UNIX = getattr(socket, "AF_UNIX", None)


class ProgressReporter:
    """Advance one task of a parent process's ``ProgressManager`` from any local process.

    Made by ``ProgressManager.reporter()`` or ``ProgressTask.reporter()``; pickle it into
    worker processes (as a pool task argument, say). Each copy connects on first use.

    Example:
        >>> def work(chunk, reporter):
        ...     for item in chunk:
        ...         ...  # compute
        ...         reporter.update(1)
        >>> # pool.starmap(work, [(chunk, pm.reporter()) for chunk in chunks])

    Once the parent's manager is closed, updates are dropped without error.
    """

    def __init__(self, address: Any, family: int, token: bytes, task_id: int) -> None:
        self._address = address
        self._family = family
        self._token = token
        self._task_id = task_id
        self._sock: socket.socket | None = None
        self._pid = 0
        self._gone = False

    def __getstate__(self) -> dict[str, Any]:
        return {
            "address": self._address,
            "family": self._family,
            "token": self._token,
            "task_id": self._task_id,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._address = state["address"]
        self._family = state["family"]
        self._token = state["token"]
        self._task_id = state["task_id"]
        self._sock = None
        self._pid = 0
        self._gone = False

    def __repr__(self) -> str:
        return f"ProgressReporter(task_id={self._task_id}, address={self._address!r})"

    def update(self, n: Number = 1) -> None:
        """Add ``n`` finished items to the task in the parent process.

        Raises:
            ProgressError: ``n`` is negative, not finite or not a number.
        """
        amount = check_amount(n)
        if self._gone:
            return
        record = _RECORD.pack(self._task_id, float(amount))
        try:
            self._connection().sendall(record)
        except OSError:  # the parent closed its manager: nothing is listening any more
            self._gone = True
            self.close()

    def _connection(self) -> socket.socket:
        if self._sock is not None and self._pid == os.getpid():
            return self._sock
        self.close()  # a connection inherited through fork(): its stream is the parent's
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.connect(self._address)
            sock.sendall(self._token)
        except OSError:
            sock.close()
            raise
        self._sock, self._pid = sock, os.getpid()
        return sock

    def close(self) -> None:
        """Close this copy's connection (also done when the copy is garbage collected)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ReportServer:
    """Accepts reporter connections and delivers their records to ``deliver(task_id, n)``.

    Runs one daemon thread (``lensing_ssc-progress-reports``) blocked in ``select``;
    ``close()`` wakes it, joins it, reads what is left and removes the socket.
    """

    def __init__(self, deliver: Callable[[int, Number], None]) -> None:
        self._deliver = deliver
        self._token = secrets.token_bytes(_TOKEN_BYTES)
        self._dir: str | None = None
        if _UNIX is not None:
            self._dir = tempfile.mkdtemp(prefix="lensing_ssc-progress-")
            self._family: int = _UNIX
            self._address: Any = os.path.join(self._dir, "reports.sock")
        else:  # pragma: no cover - platforms without Unix sockets
            self._family, self._address = socket.AF_INET, ("127.0.0.1", 0)
        self._listener = socket.socket(self._family, socket.SOCK_STREAM)
        self._listener.bind(self._address)
        self._address = self._listener.getsockname()
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._wake_read, self._wake_write = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._buffers: dict[socket.socket, bytearray] = {}
        self._trusted: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="lensing_ssc-progress-reports", daemon=True
        )
        self._thread.start()

    def reporter(self, task_id: int) -> ProgressReporter:
        """A picklable handle for task ``task_id``."""
        return ProgressReporter(self._address, self._family, self._token, task_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            events = self._selector.select(timeout=None)
            if self._stop.is_set():
                return
            with self._lock:
                self._handle([key.fileobj for key, _ in events])

    def drain(self) -> None:
        """Deliver every record that has reached this process, then return."""
        with self._lock:
            if not self._closed:
                self._handle([self._listener, *self._buffers])

    def _handle(self, ready: list[Any]) -> None:
        for obj in ready:
            if obj is self._listener:
                self._accept_all()
            elif obj is self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    self._wake_read.recv(64)
            elif obj in self._buffers:
                self._read(obj)

    def _accept_all(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            self._buffers[conn] = bytearray()
            self._selector.register(conn, selectors.EVENT_READ)
            self._read(conn)

    def _read(self, conn: socket.socket) -> None:
        buffer = self._buffers[conn]
        ended = False
        while not ended:
            try:
                chunk = conn.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            ended = not chunk
            buffer += chunk
        if conn not in self._trusted and len(buffer) >= _TOKEN_BYTES:
            if not hmac.compare_digest(bytes(buffer[:_TOKEN_BYTES]), self._token):
                self._drop(conn)  # not one of our reporters
                return
            del buffer[:_TOKEN_BYTES]
            self._trusted.add(conn)
        if conn in self._trusted:
            usable = len(buffer) - len(buffer) % _RECORD.size
            for task_id, amount in _RECORD.iter_unpack(bytes(buffer[:usable])):
                self._deliver(task_id, int(amount) if amount.is_integer() else amount)
            del buffer[:usable]
        if ended:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        if self._buffers.pop(conn, None) is not None:
            self._selector.unregister(conn)
        self._trusted.discard(conn)
        conn.close()

    def close(self) -> None:
        """Stop the thread, deliver what is left, remove the socket. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        self._thread.join()
        self.drain()
        with self._lock:
            self._closed = True
            for conn in list(self._buffers):
                conn.close()
            self._buffers.clear()
            self._selector.close()
            for sock in (self._listener, self._wake_read, self._wake_write):
                sock.close()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
