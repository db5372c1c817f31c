"""Raw upstream pools against a real HTTP server: reuse after a complete exchange only, never
across TLS profiles, limits, retirement, and the response parsing the relay sees."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.proxy import http1
from gateway.tls.client import ClientProfile
from gateway.upstream.origin import OriginConnection, UpstreamError
from gateway.upstream.origins import OriginKey, Origins


class Collect:
    """A relay that keeps what it is given."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.length: int | None = None
        self.data = b""
        self.done_called = False

    def head(self, status: int, headers: http1.Headers, length: int | None,
             has_body: bool) -> None:
        self.status, self.length = status, length

    def body(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass

    def done(self) -> None:
        self.done_called = True


@pytest.fixture
async def origin() -> AsyncIterator[int]:
    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path == "/chunked":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for _ in range(3):
                await resp.write(b"abc")
            await resp.write_eof()
            return resp
        if request.path == "/close":
            return web.Response(text="bye", headers={"Connection": "close"})
        if request.path == "/slow":
            await asyncio.sleep(1)
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def no_context(profile: ClientProfile) -> ssl.SSLContext:
    raise AssertionError("plain HTTP needs no context")


async def get(origins: Origins, key: OriginKey, path: bytes, method: str = "GET",
              read_timeout: float = 5) -> tuple[OriginConnection, bool, Collect]:
    conn, reused = await origins.acquire(key, 5)
    relay = Collect()
    finished = conn.begin(relay, method, read_timeout)
    conn.write(http1.request_head(method, path, [(b"Host", b"x")]))
    conn.request_sent()
    try:
        await finished
    finally:
        origins.release(conn, finished.done() and finished.exception() is None)
    return conn, reused, relay


async def test_complete_exchanges_reuse_one_connection(origin: int) -> None:
    origins = Origins(no_context)
    key = OriginKey(None, "127.0.0.1", origin, None)
    first, reused, relay = await get(origins, key, b"/")
    assert not reused and relay.status == 200 and relay.data == b"hello" and relay.done_called
    for path in (b"/chunked", b"/", b"/x"):
        conn, reused, relay = await get(origins, key, path, method="HEAD" if path == b"/x"
                                        else "GET")
        assert conn is first and reused
    assert relay.data == b"" and relay.length == 5  # HEAD: the length told, no body waited for
    conn, _, relay = await get(origins, key, b"/close")
    assert relay.data == b"bye" and not conn.keep_alive
    conn, reused, _ = await get(origins, key, b"/")
    assert not reused and conn is not first  # the upstream said close: not pooled
    origins.close()


async def test_incomplete_exchanges_and_limits(origin: int) -> None:
    origins = Origins(no_context, max_requests=2)
    key = OriginKey(None, "127.0.0.1", origin, None)
    first, _, _ = await get(origins, key, b"/")
    again, reused, _ = await get(origins, key, b"/")
    assert again is first and reused
    third, reused, _ = await get(origins, key, b"/")  # two requests served: closed
    assert not reused and third is not first
    with pytest.raises(UpstreamError) as failed:
        await get(origins, key, b"/slow", read_timeout=0.2)
    assert failed.value.kind == "read_timeout"
    fourth, reused, _ = await get(origins, key, b"/")  # the timed-out one was not pooled
    assert not reused and fourth is not third
    origins.close()


async def test_profiles_never_share_a_connection_and_retire(origin: int) -> None:
    contexts: dict[ClientProfile, ssl.SSLContext] = {}
    origins = Origins(lambda p: contexts.setdefault(p, ssl.create_default_context()))
    plain = OriginKey(None, "127.0.0.1", origin, None)
    conn, _, _ = await get(origins, plain, b"/")
    assert origins.idle_count == 1
    other = OriginKey(ClientProfile(verify=False), "127.0.0.1", origin, None)
    with pytest.raises(UpstreamError) as failed:  # the plain-HTTP origin does not speak TLS
        await origins.acquire(other, 2)
    assert failed.value.kind == "tls"
    origins.retain([])  # plain HTTP is always kept
    again, reused, _ = await get(origins, plain, b"/")
    assert reused and again is conn
    origins.close()
    assert conn.transport is not None and conn.transport.is_closing()


async def test_an_idle_connection_the_upstream_closes_leaves_the_pool(origin: int) -> None:
    origins = Origins(no_context)
    key = OriginKey(None, "127.0.0.1", origin, None)
    conn, _, _ = await get(origins, key, b"/")
    assert conn.transport is not None
    conn.transport.close()  # stands for the upstream's idle timeout
    for _ in range(100):
        if origins.idle_count == 0:
            break
        await asyncio.sleep(0.01)
    assert origins.idle_count == 0
    origins.close()


async def test_a_body_delimited_by_the_close_completes() -> None:
    """An HTTP/1.0 upstream without Content-Length ends its body by closing."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ")
        await writer.drain()
        writer.write(b"world")
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    origins = Origins(no_context)
    try:
        conn, _, relay = await get(origins, OriginKey(None, "127.0.0.1", port, None), b"/")
        assert relay.status == 200 and relay.length is None and relay.data == b"hello world"
        assert relay.done_called and conn.closed
    finally:
        origins.close()
        server.close()


async def test_a_response_head_beyond_proxy_buffer_size_is_a_bad_response() -> None:
    """nginx's proxy_buffer_size (a page): a head that outgrows it is "upstream sent too big
    header", whether it arrives whole or its header line never ends (then it is refused as
    it arrives, not buffered: the upstream is still writing when the exchange fails)."""
    sent: dict[bytes, int] = {}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await reader.readuntil(b"\r\n\r\n")).split(b" ")[1]
        status = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 20480\r\n"
        if path == b"/endless":  # one header line that never ends, a read at a time
            writer.write(status + b"X-Big: ")
            sent[path] = 0
            try:
                for _ in range(2000):  # 2,000 x 1 KB at most
                    writer.write(b"v" * 1024)
                    await writer.drain()
                    sent[path] += 1024
                    await asyncio.sleep(0.001)
            except ConnectionError:
                pass
        else:  # /N: a head of N bytes in all, and a body of 20 KB in the same write
            size = int(path[1:])
            pad = size - len(status) - len(b"X-Pad: \r\n\r\n")
            writer.write(status + b"X-Pad: " + b"p" * pad + b"\r\n\r\n" + b"z" * 20480)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    origins = Origins(no_context)
    try:
        key = OriginKey(None, "127.0.0.1", port, None)
        _, _, relay = await get(origins, key, b"/4096")  # exactly the limit: served
        assert relay.status == 200 and relay.data == b"z" * 20480
        for path in (b"/4097", b"/endless"):
            with pytest.raises(UpstreamError) as failed:
                await get(origins, key, path)
            assert failed.value.kind == "bad_response"
            assert "upstream sent too big header" in failed.value.detail
        assert sent[b"/endless"] < 64 * 1024  # refused early: the upstream gave up soon
    finally:
        origins.close()
        server.close()


class Pausing(Collect):
    """A relay whose client's buffer fills with every chunk: it pauses the upstream read
    (as the downstream connection's pause_writing does) and never resumes it."""

    def __init__(self, conn: OriginConnection) -> None:
        super().__init__()
        self.conn = conn

    def body(self, data: bytes) -> None:
        super().body(data)
        self.conn.pause_reading()


async def test_a_connection_paused_as_its_response_ended_is_pooled_reading(
        origin: int) -> None:
    """The response's last read filled the client's buffer and paused the upstream read:
    the pooled connection reads again, else the next exchange on it would wait for ever (a
    paused read is the client's slowness, never an upstream read timeout)."""
    origins = Origins(no_context)
    key = OriginKey(None, "127.0.0.1", origin, None)
    conn, _ = await origins.acquire(key, 5)
    relay = Pausing(conn)
    finished = conn.begin(relay, "GET", 5)
    conn.write(http1.request_head("GET", b"/", [(b"Host", b"x")]))
    conn.request_sent()
    await finished
    assert relay.data == b"hello" and conn.reading_paused
    origins.release(conn, True)
    again, reused, answer = await asyncio.wait_for(get(origins, key, b"/", read_timeout=1), 3)
    assert again is conn and reused and answer.data == b"hello"
    origins.close()
