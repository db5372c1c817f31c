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


@dataclass
class Script:
    """What the upstream does with the n-th request (from 1) on its n-th connection:
    ``answer``, ``close`` (read it, close without a word) or ``hang``."""

    plan: Callable[[int, int], str] = lambda connection, request: "answer"
    connections: int = 0
    requests: list[tuple[int, int]] = field(default_factory=list)


async def serve(script: Script, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    script.connections += 1
    connection, request = script.connections, 0
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            request += 1
            script.requests.append((connection, request))
            action = script.plan(connection, request)
            if action == "close":
                break
            if action == "hang":
                await asyncio.sleep(5)
                break
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
