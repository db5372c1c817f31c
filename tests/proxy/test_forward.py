"""The attempts of an exchange on the real data plane (in process: our listener and proxy, a
raw upstream whose every connection we script): a keep-alive request answered from a pooled
upstream connection runs without a task, and when that pooled attempt fails the general
path takes over exactly where it left off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from gateway.snapshot import Loaded, build_snapshot
from tests.proxy.plane import proxy_on

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
TOO_LARGE = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n"


@dataclass
class Script:
    """What the upstream does with the n-th request (from 1) on its n-th connection:
    ``answer``, ``close`` (read it, close without a word), ``hang``, ``hold`` (as hang, with
    its writer in ``held`` for the test to answer) or ``early`` (413 at once, then the body
    is read, as HTTP lets an origin answer before it)."""

    plan: Callable[[int, int], str] = lambda connection, request: "answer"
    connections: int = 0
    requests: list[tuple[int, int]] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # the request lines, as read
    held: list[asyncio.StreamWriter] = field(default_factory=list)  # ``hold``: the test writes


async def serve(script: Script, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    script.connections += 1
    connection, request = script.connections, 0
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            request += 1
            script.requests.append((connection, request))
            script.lines.append(head.split(b"\r\n", 1)[0])
            action = script.plan(connection, request)
            if action == "close":
                break
            if action in ("hang", "hold"):
                if action == "hold":
                    script.held.append(writer)
                await asyncio.sleep(5)
                break
            if action == "early":
                writer.write(TOO_LARGE)
                await writer.drain()
                length = head.lower().partition(b"content-length: ")[2].split(b"\r\n")[0]
                await reader.readexactly(int(length or 0))
                continue
            writer.write(OK)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[tuple[int, Script]]:
    script = Script()
    upstream = await asyncio.start_server(lambda r, w: serve(script, r, w), "127.0.0.1", 0)
    stamp = {"created_at": 1, "updated_at": 1}
    service = {"id": "s1", "host": "127.0.0.1", "protocol": "http", "read_timeout": 300,
               "retries": 1, "port": upstream.sockets[0].getsockname()[1], **stamp}
    route = {"id": "r1", "paths": ["/"], "protocols": ["http"], "service": {"id": "s1"},
             **stamp}
    snapshot = build_snapshot(Loaded(1, {"services": [service], "routes": [route]}))
    try:
        async with proxy_on(snapshot) as port:
            yield port, script
    finally:
        upstream.close()


async def requests(port: int, count: int) -> list[bytes]:
    """``count`` GETs on one keep-alive connection, each answer read before the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    statuses = []
    try:
        for _ in range(count):
            writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            statuses.append(head.split(b" ", 2)[1])
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
    finally:
        writer.close()
    return statuses


def tasks_made(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Records the coroutine of every task made from now on."""
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    return made


async def test_a_request_on_a_pooled_connection_needs_no_task(
        rig: tuple[int, Script]) -> None:
    port, script = rig
    assert await requests(port, 1) == [b"200"]  # the first dials: a coroutine's work
    made = tasks_made(asyncio.get_running_loop())
    try:
        assert await requests(port, 5) == [b"200"] * 5
    finally:
        asyncio.get_running_loop().set_task_factory(None)
    assert not [name for name in made if name.startswith(("Downstream", "Proxy"))]
    assert script.connections == 1  # all six on the pooled connection


async def test_a_pooled_connection_closed_under_the_request_is_replaced_quietly(
        rig: tuple[int, Script], caplog: pytest.LogCaptureFixture) -> None:
    """The upstream closes its idle connection just as our request arrives: the same
    attempt goes out again on a new connection; no failure is counted or logged."""
    port, script = rig
    script.plan = lambda connection, request: "close" if (connection, request) == (1, 2) \
        else "answer"
    with caplog.at_level(logging.INFO, logger="ramparts"):
        assert await requests(port, 3) == [b"200"] * 3
    assert script.connections == 2
    assert script.requests == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_pooled_attempt_that_times_out_is_retried_on_a_new_connection(
        rig: tuple[int, Script], caplog: pytest.LogCaptureFixture) -> None:
    """The pooled attempt's read timeout is the target's failure: logged, and the next
    attempt (retries: 1) dials."""
    port, script = rig
    script.plan = lambda connection, request: "hang" if (connection, request) == (1, 2) \
        else "answer"
    with caplog.at_level(logging.INFO, logger="ramparts"):
        assert await requests(port, 2) == [b"200"] * 2
    assert script.requests == [(1, 1), (1, 2), (2, 1)]
    assert any("trying again" in r.getMessage() for r in caplog.records)


async def test_a_pooled_attempt_that_times_out_on_the_last_try_is_504(
        rig: tuple[int, Script]) -> None:
    port, script = rig
    script.plan = lambda connection, request: "hang" if request == 2 or connection > 1 \
        else "answer"
    assert await requests(port, 2) == [b"200", b"504"]


async def post(port: int, length: int, sent: bytes) -> bytes:
    """A POST of ``length`` bytes of which ``sent`` are sent; the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s"
                     % (length, sent))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return head.split(b" ", 2)[1]
    finally:
        writer.close()


async def test_an_upstream_that_answered_before_the_whole_body_is_not_reused(
        rig: tuple[int, Script]) -> None:
    """The upstream still expects the rest of the body: a request sent on that connection
    (another client's) would be read as body. It is closed, not pooled."""
    port, script = rig
    script.plan = lambda connection, request: "early" if connection == 1 else "answer"
    assert await post(port, 60, b"0123456789") == b"413"  # the rest never comes
    assert await requests(port, 1) == [b"200"]
    assert script.lines == [b"POST /up HTTP/1.1", b"GET /x HTTP/1.1"]
    assert script.connections == 2


async def test_an_upstream_that_answered_after_the_whole_body_is_reused(
        rig: tuple[int, Script]) -> None:
    port, script = rig
    script.plan = lambda connection, request: "early"
    for _ in range(3):
        assert await post(port, 10, b"0123456789") == b"413"
    assert script.lines == [b"POST /up HTTP/1.1"] * 3
    assert script.connections == 1


async def chunk_then(port: int, script: Script,
                     then: Callable[[asyncio.StreamWriter], None]) -> tuple[bytes, bytes]:
    """A chunked POST's head and first chunk; once the upstream has them, ``then`` (with the
    client's writer); the answer read to the connection's end, as head and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n")
            while not script.lines:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # the first chunk went upstream
            then(writer)
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


async def test_a_body_that_breaks_its_chunked_framing_midway_gets_400(
        rig: tuple[int, Script], caplog: pytest.LogCaptureFixture) -> None:
    """The request went upstream with its first chunk; a bad chunk line later fails the
    body's reads: Kong's 400 (nginx: "client sent invalid chunked body"), then the
    connection closes. The upstream request is abandoned, its connection not pooled."""
    port, script = rig
    script.plan = lambda connection, request: "hang"
    with caplog.at_level(logging.INFO, "ramparts.proxy"):
        head, body = await chunk_then(port, script, lambda client: client.write(b"zz\r\n"))
    assert head.startswith(b"HTTP/1.1 400 ") and b"connection: close" in head.lower()
    assert b'"message":"Bad request"' in body
    assert "client sent invalid chunked body" in caplog.text


async def test_a_body_that_fails_once_the_answer_began_lets_it_end_whole(
        rig: tuple[int, Script]) -> None:
    """The bad chunk and the upstream's answer arrive in one loop pass: the body's failure
    comes after the answer began, which is relayed whole (not cut short behind a clean
    close), then the connection closes."""
    port, script = rig
    script.plan = lambda connection, request: "hold"

    def both(client: asyncio.StreamWriter) -> None:  # one step: one loop pass sees both
        client.write(b"zz\r\n")
        upstream = script.held[0]
        upstream.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        asyncio.get_running_loop().call_later(0.2, upstream.write, b"world")

    head, body = await chunk_then(port, script, both)
    assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" in head.lower()
    assert body == b"helloworld"


async def test_a_body_that_fails_after_the_answer_began_lets_it_end_whole(
        rig: tuple[int, Script]) -> None:
    """The answer's head reached the client, then its body breaks: the answer still ends
    whole (it said nothing of closing), then the connection closes."""
    port, script = rig
    script.plan = lambda connection, request: "hold"

    def later(client: asyncio.StreamWriter) -> None:
        upstream = script.held[0]
        upstream.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, client.write, b"zz\r\n")  # the head is out by then
        loop.call_later(0.2, upstream.write, b"world")

    head, body = await chunk_then(port, script, later)
    assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in head.lower()
    assert body == b"helloworld"
