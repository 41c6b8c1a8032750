"""A local channel from worker processes to their parent: one socket, one token, one thread.

The log manager forwards its workers' records through it (:mod:`.log._transport`) and the
progress manager its workers' counts (:mod:`.progress._reporter`). Each keeps its own wire
format and hands the server a reader for it; this module owns what they share:

* :class:`ChannelServer`, in the parent: a Unix socket in a private directory
  (``tempfile.mkdtemp``, readable by this user only), or a loopback TCP port where Unix
  sockets do not exist or cannot be bound (or when asked for, ``force_tcp=True``); a
  random token each connection must send before anything else; and one daemon thread
  (``lensing_ssc-...``) that accepts connections and passes what each authenticated peer
  sends to the reader. ``drain()`` reads, on the calling thread, everything that has
  arrived; ``close(grace)`` stops accepting, reads until every peer hung up or ``grace``
  seconds passed in silence, joins the thread and removes the directory.
* :class:`ChannelClient`, in a worker: connects and sends the token on first use, and
  connects anew in a forked child (a connection inherited through ``fork`` is the
  parent's stream, shared with it).
* :class:`ChannelError`: a client could not connect, or its server went away.

A forked child also inherits the server's sockets. In the child, ``start`` and ``drain``
do nothing and ``close`` only closes the child's copies of the descriptors
(:meth:`ChannelServer.abandon`): the directory and the connections stay the parent's.

Not here: framing and decoding (the reader's), the handles workers receive (the
managers'), and other machines: the channel reaches processes on this machine only.
"""

from __future__ import annotations

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

from lensing_ssc.core.base.exceptions import LensingSSCError

__all__ = [
    "Address",
    "ChannelClient",
    "ChannelError",
    "ChannelServer",
    "Reader",
    "Report",
    "address_family",
]

Address = str | tuple[str, int]
"""Where a server listens: a Unix socket's path, or a loopback ``(host, port)``."""

Reader = Callable[[bytearray], None]
"""Takes the complete messages off the front of a connection's buffer (``del buffer[:n]``)."""

Report = Callable[[str, BaseException], None]
"""Told ``(what, exception)`` when a connection fails or is refused."""

_TOKEN_CHARS = 32  # hex characters of a 16-byte random token
_READ_SIZE = 1 << 18  # bytes per read, into one reused buffer: a large size allocates nothing
_CLOSING_POLL = 0.05  # seconds between checks for the end of the grace period while closing
_LISTEN = object()  # selector tags of the listening socket and the wake-up socket
_WAKE = object()


class ChannelError(LensingSSCError, ConnectionError):
    """A channel client could not connect to its server, or lost it.

    Also a :class:`ConnectionError` (so an ``OSError``), which is what the log and progress
    modules catch to fall back (stderr, dropped counts). ``value`` is the server's address.
    """


def address_family(address: Address) -> int:
    """The socket family of ``address``: ``AF_UNIX`` for a path, ``AF_INET`` for a pair."""
    return socket.AF_UNIX if isinstance(address, str) else socket.AF_INET


class _Connection:
    __slots__ = ("authed", "buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.authed = False


class ChannelServer:
    """The parent's end: accepts worker connections and hands their bytes to ``reader``.

    The socket is bound at construction (so a ``fork`` right after inherits the address);
    the thread runs from :meth:`start`. ``reader`` runs with the server's lock held, on the
    thread or on a thread calling :meth:`drain` or :meth:`close`, one call at a time.

    Args:
        reader: Takes complete messages off a connection's buffer.
        name: The thread's name, ``lensing_ssc-...``; also the directory's prefix.
        report: Told about refused connections and failed reads; ``None`` ignores them.
        force_tcp: Listen on loopback TCP even where a Unix socket could serve.

    Raises:
        ChannelError: no socket could be bound.

    Example:
        >>> received = bytearray()
        >>> def take_all(buffer: bytearray) -> None:
        ...     received.extend(buffer)
        ...     del buffer[:]
        >>> server = ChannelServer(take_all, name="lensing_ssc-example")
        >>> server.start()
        >>> client = ChannelClient(server.address, server.token)
        >>> client.send(b"hello")
        >>> client.close()
        >>> server.close()
        >>> bytes(received)
        b'hello'
    """

    def __init__(
        self,
        reader: Reader,
        *,
        name: str,
        report: Report | None = None,
        force_tcp: bool = False,
    ) -> None:
        self._reader = reader
        self._report = report
        self.name = name
        self.token = secrets.token_hex(_TOKEN_CHARS // 2)
        self._token = self.token.encode("ascii")
        self._dir: str | None = None
        self._listener, self.address = self._bind(force_tcp)
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._listening = True
        # Wakes the thread at once on close, so it can block in select() while idle.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, _LISTEN)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._connections: set[_Connection] = set()
        self._scratch = bytearray(_READ_SIZE)
        self._scratch_view = memoryview(self._scratch)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._closed = False
        self._grace = 0.0
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None

    def _bind(self, force_tcp: bool) -> tuple[socket.socket, Address]:
        if not force_tcp and hasattr(socket, "AF_UNIX"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._dir = tempfile.mkdtemp(prefix=f"{self.name}-")
                path = os.path.join(self._dir, "channel.sock")
                sock.bind(path)
                return sock, path
            except OSError:  # a TMPDIR too long for a socket's path, say: TCP serves as well
                sock.close()
                self._remove_dir()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
        except OSError as exc:
            sock.close()
            raise ChannelError(
                f"cannot bind a loopback TCP port for {self.name}: {exc}",
                value="127.0.0.1",
                hint="check that the loopback interface is up",
            ) from exc
        host, port = sock.getsockname()[:2]
        return sock, (host, port)

    @property
    def owned(self) -> bool:
        """Whether this process made the server (``False`` in a forked child)."""
        return os.getpid() == self._pid

    def start(self) -> None:
        """Start the receiving thread (idempotent; nothing once closing or in a forked child)."""
        if self._thread is None and not self._closing.is_set() and self.owned:
            self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._thread.start()

    # -- receiving -----------------------------------------------------------------------
    def _serve(self) -> None:
        quiet_since = 0.0
        while True:
            # Idle: block until a peer or close() wakes us; closing: poll for the grace.
            events = self._selector.select(_CLOSING_POLL if self._closing.is_set() else None)
            with self._lock:
                for key, _ in events:
                    self._dispatch(key.data)
                if not self._closing.is_set():
                    continue
                now = time.monotonic()
                if self._listening:
                    self._accept_all()  # connections already queued are still served
                    self._stop_listening()
                    quiet_since = now
                if events:
                    quiet_since = now
                if not self._connections or now - quiet_since >= self._grace:
                    self._read_all()
                    return

    def _dispatch(self, tag: object) -> None:
        if tag is _LISTEN:
            self._accept_all()
        elif tag is _WAKE:
            try:
                while self._wake_r.recv(64):
                    pass
            except OSError:  # nothing more to read (BlockingIOError) or closed
                return
        elif isinstance(tag, _Connection) and tag in self._connections:
            self._read(tag)

    def _accept_all(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: the peer will retry or fail
                self._tell("a worker connection", exc)
                return
            sock.setblocking(False)
            conn = _Connection(sock)
            self._connections.add(conn)
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self._read(conn)

    def _read(self, conn: _Connection) -> None:
        ended = False
        while True:
            try:
                count = conn.sock.recv_into(self._scratch)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._tell("a worker connection", exc)
                count = 0
            if not count:
                ended = True
                break
            conn.buffer += self._scratch_view[:count]
            if count < _READ_SIZE:  # a short read took everything that had arrived
                break
        refused = bool(conn.buffer) and not self._take(conn)
        if refused or ended:
            self._drop(conn)

    def _take(self, conn: _Connection) -> bool:
        """Pass the buffer to the reader; ``False`` when the peer sent a wrong token."""
        buffer = conn.buffer
        if not conn.authed:
            if len(buffer) < _TOKEN_CHARS:
                return True
            if not hmac.compare_digest(bytes(buffer[:_TOKEN_CHARS]), self._token):
                self._tell(
                    "a worker connection",
                    ChannelError(
                        "a connection did not start with this channel's token; closed it",
                        value=self.address,
                        hint="only processes handed this channel's token can send to it",
                    ),
                )
                return False
            del buffer[:_TOKEN_CHARS]
            conn.authed = True
        if buffer:
            self._reader(buffer)
        return True

    def _read_all(self) -> None:
        for conn in list(self._connections):
            self._read(conn)

    def _drop(self, conn: _Connection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _stop_listening(self) -> None:
        self._listening = False
        self._selector.unregister(self._listener)
        self._listener.close()

    def _tell(self, what: str, exc: BaseException) -> None:
        if self._report is not None:
            self._report(what, exc)

    def drain(self) -> None:
        """Hand the reader everything that has reached this process, then return."""
        if not self.owned:
            return
        with self._lock:
            if self._closed:
                return
            if self._listening:
                self._accept_all()
            self._read_all()

    # -- closing -------------------------------------------------------------------------
    def close(self, grace: float = 0.0) -> None:
        """Stop accepting; read until every peer hung up or ``grace`` s passed in silence.

        Everything peers sent before they hung up (or before the grace ran out) reaches
        the reader. Joins the thread and removes the directory. Idempotent; in a forked
        child, the same as :meth:`abandon`.
        """
        if not self.owned:
            self.abandon()
            return
        with self._lock:
            if self._closing.is_set():
                return
            self._grace = grace
            self._closing.set()
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join()
        else:
            self._serve()  # never started: read what is queued here
        with self._lock:
            self._closed = True
            self._release()
        self._remove_dir()

    def abandon(self) -> None:
        """In a forked child: close this process's copies of the sockets, keep the directory."""
        self._closed = True
        self._listening = False
        self._release()

    def _release(self) -> None:
        # Closing descriptors only (never unregistering): in a forked child the selector's
        # registrations are shared with the parent's.
        for conn in self._connections:
            conn.sock.close()
        self._connections.clear()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ChannelServer {self.name} at {self.address!r} ({state})>"


class ChannelClient:
    """A worker's end: one connection to a :class:`ChannelServer`, made on first use.

    In a forked child the inherited connection is left to the parent and a new one made.

    Args:
        address: The server's ``address``.
        token: The server's ``token``.
        timeout: Seconds a connect may take; ``None`` waits as long as the server's
            backlog is full.
    """

    def __init__(self, address: Address, token: str, *, timeout: float | None = 10.0) -> None:
        self.address = address
        self._token = token.encode("ascii")
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._pid = 0

    def connect(self) -> socket.socket:
        """This process's connection, made now if there is none.

        Raises:
            ChannelError: the server cannot be reached (closed, or its process gone).
        """
        if self._sock is not None and self._pid == os.getpid():
            return self._sock
        self.close()  # a connection inherited through fork(): its stream is the parent's
        sock = socket.socket(address_family(self.address), socket.SOCK_STREAM)
        try:
            sock.settimeout(self._timeout)
            sock.connect(self.address)
            sock.settimeout(None)
            sock.sendall(self._token)
        except OSError as exc:
            sock.close()
            raise self._error("cannot connect to", exc) from exc
        self._sock, self._pid = sock, os.getpid()
        return sock

    def send(self, data: bytes) -> None:
        """Send ``data`` whole (connecting first if needed).

        Raises:
            ChannelError: the server cannot be reached or has gone away; the connection
                is closed, and the next ``send`` tries to connect again.
        """
        sock = self._sock
        if sock is None or self._pid != os.getpid():
            sock = self.connect()
        try:
            sock.sendall(data)
        except OSError as exc:
            self.close()
            raise self._error("lost the connection to", exc) from exc

    def _error(self, what: str, exc: OSError) -> ChannelError:
        return ChannelError(
            f"{what} {self.address!r}: {exc.strerror or exc}",
            value=self.address,
            hint="the process that opened this channel has closed it or exited",
        )

    def close(self) -> None:
        """Close this process's connection, if any (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        return f"<ChannelClient to {self.address!r}>"
