"""Lingering close (gateway/proxy/linger.py), on real sockets, plain and TLS: a client that
writes its whole request before it reads, as curl does, gets the answer to a request refused
before its body was read, instead of a reset in the middle of its write; the connection ends
once the client is silent for ``lingering_timeout``, after ``lingering_time`` at the latest,
and at once when the data plane stops."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from gateway.errors_proxy import Reply
from gateway.proxy.body import RequestBody
from gateway.proxy.connection import Downstream, Limits
from gateway.proxy.http1 import RequestHead
from gateway.proxy.linger import Lingering
from gateway.proxy.listeners import DataPlane
from tests.proxy.plane import uncollected
from tests.proxy.test_connection import data_plane, wait_gone
from tests.proxy.test_tls import server_context

BODY = 16 * 1024 * 1024  # far more than both sockets' buffers hold
HEAD = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % BODY
BROKEN = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"


def refuse(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """An answer before the body is read that ends the connection, as nginx's 413 does (a
    keep-alive answer discards the body instead: test_discard.py)."""
    conn.keep_alive(False)
    conn.reply(Reply(413, [(b"content-type", b"text/plain")], b"too large"), head)


def plane(limits: Limits, tls: Path | None = None
          ) -> AbstractAsyncContextManager[tuple[DataPlane, int]]:
    return data_plane(refuse, limits, server_context(tls) if tls is not None else None)


def connect(port: int, tls: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if not tls:
        return sock
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return client.wrap_socket(sock, server_hostname="localhost")


def upload(port: int, tls: bool, head: bytes = HEAD) -> tuple[socket.socket, bytes]:
    """Writes ``head`` and BODY bytes, then reads the answer up to the server's end of it;
    returns the open socket and what was read."""
    sock = connect(port, tls)
    sock.sendall(head)
    chunk = b"x" * 65536
    for _ in range(BODY // len(chunk)):
        sock.sendall(chunk)  # without lingering: a reset, within the first few MB
    answer = b""
    while data := sock.recv(65536):
        answer += data
    return sock, answer


def trickle(sock: socket.socket, seconds: float = 5.0) -> None:
    """A byte every 0.1 s (never silent for a lingering_timeout), for ``seconds`` or until
    the connection is gone."""
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            sock.sendall(b"x")
            time.sleep(0.1)
    except OSError:
        return


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_client_still_writing_its_body_gets_the_early_answer(
        tmp_path: Path, tls: bool) -> None:
    async with plane(Limits(), tmp_path if tls else None) as (_, port):
        for _ in range(3):
            sock, answer = await asyncio.to_thread(upload, port, tls)
            sock.close()
            assert answer.startswith(b"HTTP/1.1 413 ")
            assert answer.endswith(b"\r\n\r\ntoo large")


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_refused_request_followed_by_more_bytes_gets_its_400(
        tmp_path: Path, tls: bool) -> None:
    async with plane(Limits(), tmp_path if tls else None) as (_, port):
        sock, answer = await asyncio.to_thread(upload, port, tls, BROKEN)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 400 ")


async def test_the_connection_ends_once_the_client_is_silent_for_lingering_timeout() -> None:
    async with plane(Limits(lingering_timeout=1.0)) as (running, port):
        sock, answer = await asyncio.to_thread(upload, port, False)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert len(running.connections) == 1  # lingering: still read, its input dropped
        waited = await wait_gone(running, 5)
        assert 0.5 < waited < 3
        sock.close()


async def test_lingering_time_ends_a_client_that_never_stops_sending() -> None:
    limits = Limits(lingering_timeout=1.0, lingering_time=1.5)
    async with plane(limits) as (running, port):
        sock, answer = await asyncio.to_thread(upload, port, False)
        assert answer.startswith(b"HTTP/1.1 413 ")
        sender = asyncio.create_task(asyncio.to_thread(trickle, sock))
        waited = await wait_gone(running, 5)
        assert waited < 3  # never silent for lingering_timeout, ended by lingering_time
        await sender
        sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_lingering_connection_is_freed_without_the_collector(
        tmp_path: Path, tls: bool) -> None:
    """The connection and its lingering close refer to each other until the end: the end
    breaks that, so neither waits for the cyclic collector."""
    async with plane(Limits(lingering_timeout=0.2), tmp_path if tls else None) as (
            running, port):
        with uncollected(Downstream, Lingering) as left:
            sock, answer = await asyncio.to_thread(upload, port, tls)
            assert answer.startswith(b"HTTP/1.1 413 ")
            assert await wait_gone(running, 3) < 3
            await asyncio.sleep(0.05)
            sock.close()
        assert left == []


def refuse_at_length(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """An early answer far larger than the sockets' buffers."""
    conn.keep_alive(False)
    conn.reply(Reply(413, [], b"x" * BODY), head)


async def test_lingering_time_ends_a_client_that_never_reads_its_answer() -> None:
    """The answer cannot all be written to a client that does not read: at the end of
    lingering_time the connection is cut, not closed after a write that never ends."""
    limits = Limits(lingering_timeout=1.0, lingering_time=1.0)
    async with data_plane(refuse_at_length, limits) as (running, port):
        def send_only() -> socket.socket:
            client = connect(port, False)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.sendall(HEAD + b"x" * 65536)
            return client

        client = await asyncio.to_thread(send_only)
        await asyncio.sleep(0.3)
        assert len(running.connections) == 1
        assert await wait_gone(running, 5) < 3
        client.close()


async def test_a_drain_ends_lingering_connections_at_once() -> None:
    async with plane(Limits(lingering_timeout=30)) as (running, port):
        sock, answer = await asyncio.to_thread(upload, port, False)
        assert answer.startswith(b"HTTP/1.1 413 ")
        start = time.monotonic()
        await running.stop(grace=10)
        assert time.monotonic() - start < 1
        assert not running.connections
        sock.close()


async def test_lingering_close_off_closes_at_once() -> None:
    async with plane(Limits(lingering_close="off")) as (running, port):
        with pytest.raises(OSError):  # the reset the lingering close exists to avoid
            await asyncio.to_thread(upload, port, False)
        assert await wait_gone(running, 2) < 1



def ask(port: int) -> tuple[socket.socket, bytes]:
    """A whole request (no body) with ``Connection: close``; its answer, read to the end."""
    sock = connect(port, False)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    answer = b""
    while data := sock.recv(65536):
        answer += data
    return sock, answer


@pytest.mark.parametrize(("mode", "lingers"), [("always", True), ("on", False)])
async def test_lingering_close_always_lingers_after_a_whole_request(
        mode: str, lingers: bool) -> None:
    """``always``: even after a request read whole; ``on``: only with input unread."""
    async with plane(Limits(lingering_close=mode, lingering_timeout=1.0)) as (
            running, port):
        sock, answer = await asyncio.to_thread(ask, port)
        assert answer.startswith(b"HTTP/1.1 413 ")
        waited = await wait_gone(running, 5)
        assert 0.5 < waited < 3 if lingers else waited < 0.5
        sock.close()
