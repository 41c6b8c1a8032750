"""Records of worker processes travel to the parent's one writer over a local socket.

Several processes of one run must not each append to and rotate the same file: lines would
interleave, rotations would race, and records would be lost or doubled. Instead the parent
:class:`LogReceiver` listens on a Unix socket in a private directory (a loopback TCP port
where Unix sockets do not exist), and each worker's pipeline writes through a
:class:`ParentSink`: the worker formats its own records (its context, its extras), and
sends them as length-prefixed frames after a random token. The receiver thread
(``lensing_ssc-log-receiver``) pushes each frame, one record, into the parent's queue, so
the parent's writer rotates and archives for everyone and every record is written once.

A worker that loses its parent (the parent died) reports it once and writes its remaining
records to its own stderr, which batch systems keep, instead of dropping them.

Workers are set up by ``LogManager.attach_worker`` (any start method) or automatically in
``fork`` children; see :mod:`lensing_ssc.processing.managers.log._manager`.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from lensing_ssc.processing.managers.log._sinks import ConsoleSink

__all__ = ["RECEIVER_THREAD_NAME", "LogReceiver", "ParentSink"]

RECEIVER_THREAD_NAME = "lensing_ssc-log-receiver"
_HAS_UNIX = hasattr(socket, "AF_UNIX")
_TOKEN_BYTES = 32  # hex characters of a 16-byte token


class _Connection:
    __slots__ = ("authed", "buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.authed = False


class LogReceiver:
    """Accepts worker connections and pushes their records to ``push``.

    Args:
        push: Receives a list of complete records (bytes ending in a newline).
        report: Called with ``(what, exception)`` when something goes wrong.
    """

    def __init__(
        self,
        push: Callable[[list[bytes]], None],
        report: Callable[[str, BaseException], None],
    ) -> None:
        self._push = push
        self._report = report
        self.token = secrets.token_hex(_TOKEN_BYTES // 2)
        self._token = self.token.encode("ascii")
        self._dir: str | None = None
        if _HAS_UNIX:
            self._dir = tempfile.mkdtemp(prefix="lssc-log-")
            path = os.path.join(self._dir, "writer.sock")
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(path)
            self.address: Any = path
        else:
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.bind(("127.0.0.1", 0))
            self.address = self._listener.getsockname()
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._closing = threading.Event()
        # Wakes the receiver at once on close, so it can block in select() while idle.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._grace = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the receiver thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=RECEIVER_THREAD_NAME, daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        quiet_since = 0.0
        try:
            while True:
                # Idle: block until a worker or close() wakes us; closing: poll for the grace.
                events = selector.select(timeout=0.05 if self._closing.is_set() else None)
                for key, _ in events:
                    if key.data is None:
                        self._accept(selector)
                    elif key.data is self._wake_r:
                        self._drain_wake()
                    else:
                        self._read(selector, key.data)
                if self._closing.is_set():
                    if self._listener.fileno() >= 0:
                        selector.unregister(self._listener)
                        self._listener.close()
                        quiet_since = time.monotonic()
                    if events:
                        quiet_since = time.monotonic()
                    open_conns = len(selector.get_map()) - 1  # the wake-up socket
                    if not open_conns or time.monotonic() - quiet_since > self._grace:
                        break
        finally:
            for key in list(selector.get_map().values()):
                if isinstance(key.data, _Connection):
                    key.data.sock.close()
            selector.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except (BlockingIOError, OSError):
            return

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, _Connection(sock))

    def _read(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError as exc:
            self._report("a worker connection", exc)
            data = b""
        if data:
            conn.buffer += data
            if self._parse(conn):
                return
        selector.unregister(conn.sock)
        conn.sock.close()

    def _parse(self, conn: _Connection) -> bool:
        """Push complete records; False when the peer failed authentication."""
        buf = conn.buffer
        if not conn.authed:
            if len(buf) < _TOKEN_BYTES:
                return True
            if not hmac.compare_digest(bytes(buf[:_TOKEN_BYTES]), self._token):
                self._report("a worker connection", PermissionError("wrong token; ignored"))
                return False
            del buf[:_TOKEN_BYTES]
            conn.authed = True
        records: list[bytes] = []
        pos, end = 0, len(buf)
        while end - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big")
            if end - pos - 4 < size:
                break
            records.append(bytes(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]
        if records:
            self._push(records)
        return True

    def close(self, grace: float) -> None:
        """Stop accepting; read until every worker hung up or ``grace`` s passed in silence."""
        self._grace = grace
        self._closing.set()
        with contextlib.suppress(OSError):  # the receiver is gone already: nothing to wake
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        else:
            self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def abandon(self) -> None:
        """In a forked child: close the inherited sockets, leave the directory."""
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._dir = None


class ParentSink:
    """A worker's sink: sends records to the parent's :class:`LogReceiver`.

    Raises:
        OSError: at construction when the parent cannot be reached.
    """

    def __init__(
        self,
        address: Any,
        token: str,
        report: Callable[[str, BaseException], None],
        *,
        timeout: float = 10.0,
    ) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.label = f"the parent process's log writer at {address!r}"
        self._report = report
        self._fallback: ConsoleSink | None = None
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(address)
            self._sock.settimeout(None)
            self._sock.sendall(token.encode("ascii"))
        except OSError:
            self._sock.close()
            raise

    def write(self, lines: list[bytes]) -> None:
        if self._fallback is None:
            payload = b"".join([len(line).to_bytes(4, "big") + line for line in lines])
            try:
                self._sock.sendall(payload)
                return
            except OSError as exc:
                self._report(self.label, exc)
                self._fallback = ConsoleSink()
        self._fallback.write(lines)

    def close(self) -> None:
        self._sock.close()
