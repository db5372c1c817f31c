"""A request answered before its body was read keeps its keep-alive connection, as nginx's
(gateway/proxy/connection.py: the discarded request body): the rest of the body is read and
dropped, and the client's next request on the same connection is answered; a client that
goes silent for ``lingering_timeout``, or still sends after ``lingering_time``, is closed.
Real sockets, plain and TLS."""

from __future__ import annotations

import asyncio
import socket
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from gateway.errors_proxy import Reply
from gateway.proxy.body import RequestBody
from gateway.proxy.connection import Downstream, Limits
from gateway.proxy.http1 import RequestHead
from gateway.proxy.listeners import DataPlane
from tests.proxy.plane import uncollected
from tests.proxy.test_connection import data_plane, wait_gone
from tests.proxy.test_linger import connect, trickle
from tests.proxy.test_tls import server_context

BODY = 4 * 1024 * 1024  # more than both sockets' buffers hold
SEEN: list[bytes] = []


def early(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """``/upload`` is answered 401 without reading its body (a plugin's exit); anything else
    gets 200 and its target."""
    SEEN.append(head.target)
    if head.target == b"/upload":
        conn.reply(Reply(401, [(b"content-type", b"text/plain")], b"no"), head)
        return
    conn.reply(Reply(200, [(b"content-type", b"text/plain")], head.target), head)


def plane(limits: Limits, tls: Path | None = None
          ) -> AbstractAsyncContextManager[tuple[DataPlane, int]]:
    SEEN.clear()
    return data_plane(early, limits, server_context(tls) if tls is not None else None)


def answers(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` answers (head, body) read off a keep-alive connection (Content-Length
    bodies); fewer if the server closes first."""
    data, out = b"", list[tuple[bytes, bytes]]()
    while len(out) < count:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            head = data[:end]
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(data) >= end + 4 + length:
                out.append((head, data[end + 4:end + 4 + length]))
                data = data[end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return out


def upload_then_ask(port: int, tls: bool, chunked: bool) -> list[tuple[bytes, bytes]]:
    """A whole upload written before anything is read (as curl does), then a second
    request on the same connection; both answers."""
    sock = connect(port, tls)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % BODY
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n" % framing)
    piece = b"x" * 65536
    for _ in range(BODY // len(piece)):
        sock.sendall(b"10000\r\n%s\r\n" % piece if chunked else piece)
    if chunked:
        sock.sendall(b"0\r\nX-Trailer: t\r\n\r\n")
    sock.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    try:
        return answers(sock, 2)
    finally:
        sock.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_the_connection_serves_the_next_request_after_a_discarded_body(
        tmp_path: Path, tls: bool, chunked: bool) -> None:
    async with plane(Limits(), tmp_path if tls else None) as (_, port):
        got = await asyncio.to_thread(upload_then_ask, port, tls, chunked)
    assert [head.split(b"\r\n")[0] for head, _ in got] == [
        b"HTTP/1.1 401 Unauthorized", b"HTTP/1.1 200 OK"]
    assert b"connection: close" not in got[0][0].lower()  # it said it keeps the connection
    assert got[1][1] == b"/next"
    assert SEEN == [b"/upload", b"/next"]  # no byte of the body was read as a request


async def test_a_body_sent_with_the_next_request_in_one_write_is_dropped() -> None:
    """The rest of the body and a pipelined request arrive together: the request is
    parsed where the body ends."""
    def ask(port: int) -> list[tuple[bytes, bytes]]:
        sock = connect(port, False)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345")
        first = answers(sock, 1)
        sock.sendall(b"67890GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        try:
            return first + answers(sock, 1)
        finally:
            sock.close()

    async with plane(Limits()) as (_, port):
        got = await asyncio.to_thread(ask, port)
    assert [body for _, body in got] == [b"no", b"/after"]


def send_part(port: int) -> socket.socket:
    """The start of a body, its early answer, and the connection still open both ways (a
    lingering close would have ended the server's side)."""
    sock = connect(port, False)
    sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nxx")
    assert answers(sock, 1)[0][1] == b"no"
    sock.settimeout(0.1)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(10)
    return sock


async def test_a_client_silent_for_lingering_timeout_is_closed() -> None:
    limits = Limits(lingering_timeout=0.5, keepalive_timeout=30)
    async with plane(limits) as (running, port):
        sock = await asyncio.to_thread(send_part, port)
        waited = await wait_gone(running, 5)
        sock.close()
    assert 0.3 < waited < 2  # not the keep-alive timeout: the body is still owed


async def test_lingering_time_ends_a_discard_that_never_ends() -> None:
    limits = Limits(lingering_timeout=1.0, lingering_time=1.0, keepalive_timeout=30)
    async with plane(limits) as (running, port):
        sock = await asyncio.to_thread(send_part, port)
        sender = asyncio.create_task(asyncio.to_thread(trickle, sock))
        waited = await wait_gone(running, 5)
        await sender
        sock.close()
    assert 0.7 < waited < 2.5


async def test_the_keep_alive_timeout_runs_once_the_body_is_dropped() -> None:
    limits = Limits(lingering_timeout=5.0, keepalive_timeout=0.5)
    async with plane(limits) as (running, port):
        def finish() -> socket.socket:
            sock = send_part(port)
            sock.sendall(b"x" * 998)
            return sock

        sock = await asyncio.to_thread(finish)
        waited = await wait_gone(running, 5)
        sock.close()
    assert 0.3 < waited < 2


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_body_never_asked_for_closes_the_connection_and_says_so(
        tmp_path: Path, tls: bool) -> None:
    """``Expect: 100-continue`` and no byte of the body yet: the client may never send it,
    so the answer closes the connection (with ``Connection: close``), no 100 first."""
    def ask(port: int) -> tuple[bytes, bytes]:
        sock = connect(port, tls)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return head, body

    async with plane(Limits(lingering_timeout=0.5), tmp_path if tls else None) as (_, port):
        head, body = await asyncio.to_thread(ask, port)
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"\r\nconnection: close" in head.lower()
    assert body == b"no"


async def test_a_client_leaving_mid_discard_is_freed_without_the_collector() -> None:
    """The body being dropped refers back to its connection (its flow control): the
    connection's end breaks that, so it never waits for the cyclic collector."""
    async with plane(Limits()) as (running, port):
        with uncollected(Downstream, RequestBody) as left:
            sock = await asyncio.to_thread(send_part, port)
            sock.close()
            assert await wait_gone(running, 3) < 3
            await asyncio.sleep(0.05)
    assert left == []


async def test_a_drain_waits_for_a_discard_then_closes() -> None:
    """A discarding connection is a request still in flight, as nginx counts it: a drain
    lets its body arrive (a close under an upload could reset the answer away), then
    closes it; the client reads a clean end."""
    async with plane(Limits(lingering_timeout=30, lingering_time=60)) as (running, port):
        sock = await asyncio.to_thread(send_part, port)
        stopping = asyncio.create_task(running.stop(grace=10))
        await asyncio.sleep(0.3)
        assert not stopping.done()

        def finish() -> bytes:
            sock.sendall(b"x" * 998)
            return sock.recv(1)

        assert await asyncio.to_thread(finish) == b""
        await asyncio.wait_for(stopping, 2)
        sock.close()

