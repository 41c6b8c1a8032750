"""The local channel the log and progress managers share: delivery, tokens, fallback, close."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lensing_ssc.core.base.exceptions import LensingSSCError
from lensing_ssc.processing.managers._channel import ChannelClient, ChannelError, ChannelServer

NAME = "lensing_ssc-test-channel"

needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
fork_warning = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)


class Lines:
    """A reader that keeps every newline-terminated message and leaves partial ones."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def __call__(self, buffer: bytearray) -> None:
        end = buffer.rfind(b"\n") + 1
        if end:
            self.lines.extend(bytes(buffer[:end]).splitlines())
            del buffer[:end]


def send_lines(address: str | tuple[str, int], token: str, lines: list[bytes]) -> None:
    """Child process: send each line through a client of its own."""
    with contextlib.closing(ChannelClient(address, token)) as client:
        for line in lines:
            client.send(line + b"\n")


@contextlib.contextmanager
def serving(reader: Lines, **options: Any) -> Iterator[ChannelServer]:
    """A started server, closed on leaving the block."""
    server = ChannelServer(reader, name=NAME, **options)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _channel_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == NAME]


@needs_fork
@fork_warning
def test_message_from_a_forked_child_arrives() -> None:
    """A forked child's messages reach the running server's reader, in order."""
    lines = Lines()
    with serving(lines) as server:
        child = multiprocessing.get_context("fork").Process(
            target=send_lines, args=(server.address, server.token, [b"one", b"two"])
        )
        child.start()
        child.join(60)
        server.drain()
        assert child.exitcode == 0
        assert lines.lines == [b"one", b"two"]


def test_message_from_a_spawned_child_arrives() -> None:
    """A spawned child, given only the address and token, reaches the server."""
    lines = Lines()
    with serving(lines) as server:
        child = multiprocessing.get_context("spawn").Process(
            target=send_lines, args=(server.address, server.token, [b"spawned"])
        )
        child.start()
        child.join(60)
        server.drain()
        assert child.exitcode == 0
        assert lines.lines == [b"spawned"]


def test_wrong_token_is_refused_and_the_server_keeps_serving() -> None:
    """A peer with a wrong token is reported and hung up on; its bytes never reach the reader."""
    lines = Lines()
    reports: list[tuple[str, BaseException]] = []
    with serving(lines, report=lambda what, exc: reports.append((what, exc))) as server:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as intruder:
            intruder.connect(server.address)
            intruder.sendall(b"0" * len(server.token) + b"intruder\n")
            server.drain()
            intruder.settimeout(10)
            assert intruder.recv(1) == b""  # the server closed the connection
        send_lines(server.address, server.token, [b"after"])
        server.drain()
        assert lines.lines == [b"after"]
    ((what, error),) = reports
    assert what == "a worker connection"
    assert isinstance(error, ChannelError)
    assert error.value == server.address
    assert "did not start with this channel's token" in str(error)


def test_tcp_transport_carries_messages_on_loopback() -> None:
    """force_tcp=True listens on a loopback port, and clients reach it there."""
    lines = Lines()
    with serving(lines, force_tcp=True) as server:
        host, port = server.address
        assert (host, port > 0) == ("127.0.0.1", True)
        send_lines(server.address, server.token, [b"over tcp"])
        server.drain()
        assert lines.lines == [b"over tcp"]


def test_close_is_idempotent_joins_its_thread_and_removes_the_socket() -> None:
    """close() twice stops and joins the named thread once and deletes the socket's directory."""
    server = ChannelServer(Lines(), name=NAME)
    server.start()
    assert len(_channel_threads()) == 1
    assert isinstance(server.address, str)
    directory = os.path.dirname(server.address)
    assert os.path.exists(server.address)
    server.close(grace=0.5)
    server.close(grace=0.5)
    assert server.closed
    assert _channel_threads() == []
    assert not os.path.exists(directory)


def test_everything_sent_before_close_reaches_the_reader() -> None:
    """Messages sent before close() are delivered by it, without a drain(), started or not."""
    for started in (True, False):
        lines = Lines()
        server = ChannelServer(lines, name=NAME)
        if started:
            server.start()
        with contextlib.closing(ChannelClient(server.address, server.token)) as client:
            for start in range(0, 1000, 100):  # few sends: an unstarted server reads nothing yet
                client.send(b"".join(b"%d\n" % i for i in range(start, start + 100)))
            server.close(grace=0.0)
        assert lines.lines == [b"%d" % i for i in range(1000)]


def test_client_of_a_closed_server_gets_a_channel_error() -> None:
    """Connecting to a server that closed raises ChannelError (an OSError) naming its address."""
    with serving(Lines()) as server:
        address, token = server.address, server.token
    client = ChannelClient(address, token)
    with pytest.raises(ChannelError, match="cannot connect to") as caught:
        client.send(b"late\n")
    assert isinstance(caught.value, OSError)
    assert isinstance(caught.value, LensingSSCError)
    assert caught.value.value == address
    assert caught.value.hint == "the process that opened this channel has closed it or exited"


def test_client_whose_server_closed_midway_gets_a_channel_error() -> None:
    """A connected client's send after its server closed raises ChannelError, not a bare OSError."""
    server = ChannelServer(Lines(), name=NAME)
    server.start()
    client = ChannelClient(server.address, server.token)
    client.send(b"first\n")
    server.drain()
    server.close()
    with pytest.raises(ChannelError, match="lost the connection to") as caught:
        client.send(b"second\n")
    assert caught.value.value == server.address


@needs_fork
@fork_warning
def test_close_in_a_forked_child_leaves_the_parent_serving() -> None:
    """A forked child closing its inherited server copy keeps the parent's socket and thread."""
    lines = Lines()
    with serving(lines) as server:
        child = multiprocessing.get_context("fork").Process(target=server.close)
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert isinstance(server.address, str)
        assert os.path.exists(server.address)
        send_lines(server.address, server.token, [b"still here"])
        server.drain()
        assert lines.lines == [b"still here"]
        assert len(_channel_threads()) == 1
