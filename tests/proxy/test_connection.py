"""The downstream connection on a real socket: keep-alive, pipelining in order, 100-continue,
streamed bodies, malformed requests, limits and timeouts. A small handler stands in for the
exchange, so these bytes-in, bytes-out tests need no upstream."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import sys
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from gateway.errors_proxy import Reply
from gateway.proxy.body import RequestBody
from gateway.proxy.connection import PENDING, Downstream, Handler, Limits, Pending
from gateway.proxy.http1 import RequestHead
from gateway.proxy.listeners import DataPlane
from gateway.server import bind
from gateway.settings.listen import Listener
from gateway.stats import ServerStats
from tests.e2e.proc import free_port
from tests.proxy.plane import uncollected


async def echo(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """Answers ``<method> <target> <body size>``; ``/slow`` waits 0.2 s first, so a
    pipelined request behind it would overtake it if order were not kept."""
    size = 0
    if body is not None:
        while chunk := await body.read():
            size += len(chunk)
    if head.target == b"/slow":
        await asyncio.sleep(0.2)
    text = b"%s %s %d" % (head.method.encode(), head.target, size)
    conn.reply(Reply(200, [(b"content-type", b"text/plain")], text), head)


@pytest_asyncio.fixture
async def port() -> AsyncIterator[int]:
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(echo, ServerStats(), Limits(client_header_timeout=0.5,
                                                  keepalive_timeout=0.5,
                                                  large_client_header_buffers=1024,
                                                  client_header_buffer_total=4096,
                                                  max_headers=20))
    await plane.serve([(sock, 16)])
    yield number
    await plane.stop(grace=1)
    sock.close()


async def exchange(port: int, data: bytes, until_closed: bool = True,
                   timeout: float = 5.0) -> bytes:
    """Send ``data``; read until the server closes (or ``timeout``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                out += chunk
                if not until_closed and out.count(b"HTTP/1.1") and out.endswith(b"0"):
                    break
    except TimeoutError:
        out += b"<still open>"
    writer.close()
    return out


def statuses(raw: bytes) -> list[bytes]:
    return [line.split(b" ")[1] for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.1")]


async def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    raw = await exchange(port, b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
                               b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                               b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"GET /slow 0", b"POST /b 3", b"GET /c 0"]


async def test_a_pipelined_request_whose_body_comes_later_is_answered(port: int) -> None:
    """Its head came behind another request (reading paused); its body's rest comes once
    that request is answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
                         b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n")
            await reader.readuntil(b"GET /slow 0")
            writer.write(b"2\r\nde\r\n0\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            assert await reader.readexactly(len(b"POST /b 5")) == b"POST /b 5"
    finally:
        writer.close()


async def test_chunked_body_and_expect_continue(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert await reader.readexactly(11) == b"POST /up 11"
    writer.close()


async def test_keep_alive_and_idle_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(5):
        for n in range(3):  # one connection, three requests
            writer.write(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % n)
            await reader.readuntil(b"\r\n\r\n")
            assert await reader.readexactly(len(b"GET /0 0")) == b"GET /%d 0" % n
        assert await reader.read() == b""  # idle longer than keepalive_timeout: closed
    writer.close()


async def test_http10_without_keep_alive_closes(port: int) -> None:
    raw = await exchange(port, b"GET /old HTTP/1.0\r\n\r\n")
    assert statuses(raw) == [b"200"] and raw.endswith(b"GET /old 0")


async def test_a_silent_connection_is_closed_by_the_header_timeout(port: int) -> None:
    assert await exchange(port, b"", timeout=3) == b""
    assert await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n", timeout=3) == b""


async def test_a_head_that_trickles_after_a_request_gets_the_header_timeout() -> None:
    """On a keep-alive connection the next head's timeout runs from its first byte, once:
    not the (longer) keep-alive timeout, and not restarted by every byte that trickles in
    (the timer is armed only for a head that does not arrive whole)."""
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(echo, ServerStats(), Limits(client_header_timeout=0.4,
                                                  keepalive_timeout=5.0))
    await plane.serve([(sock, 16)])
    loop = asyncio.get_running_loop()
    try:
        for trickle in (False, True):
            reader, writer = await asyncio.open_connection("127.0.0.1", number)
            writer.write(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
            await reader.readuntil(b"GET /first 0")
            began = loop.time()
            writer.write(b"GET /second HTTP/1.1\r\n")
            async with asyncio.timeout(4):
                while not reader.at_eof():
                    if trickle and not writer.is_closing():
                        writer.write(b"X")  # a byte of a header line every 50 ms
                    await asyncio.sleep(0.05)
                    if await _closed(reader):
                        break
            assert 0.3 < loop.time() - began < 1.5, trickle
            writer.close()
    finally:
        await plane.stop(grace=1)
        sock.close()


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        async with asyncio.timeout(0.01):
            return await reader.read(1) == b""
    except TimeoutError:
        return False


async def test_malformed_and_smuggling_shapes_are_refused(port: int) -> None:
    shapes = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ]
    for shape in shapes:
        answer = await exchange(port, shape)
        assert answer.startswith(b"HTTP/1.1 400 "), (shape, answer)
        assert b"connection: close" in answer
    # a coding nginx does not know is 501, as nginx answers it
    answer = await exchange(port, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert statuses(answer) == [b"501"]


async def test_a_malformed_request_after_an_answered_one_gets_its_400(port: int) -> None:
    """On a keep-alive connection too, once the answer before it is over (nginx)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            writer.write(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
            await reader.readuntil(b"GET /a 0")
            writer.write(b"GARBAGE\r\n\r\n")
            rest = await reader.read()
    finally:
        writer.close()
    assert statuses(rest) == [b"400"]


async def test_a_malformed_request_pipelined_behind_others_waits_for_their_answers(
        port: int) -> None:
    """nginx answers the requests before it, in order, then the refusal, then closes."""
    for bad, status in ((b"GARBAGE\r\n\r\n", b"400"),
                        (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414"),
                        (b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"zz\r\n", b"400")):  # a queued request's body
        raw = await exchange(port, b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
                                   b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n" + bad)
        answers = [part.split(b" ", 1)[0] for part in raw.split(b"HTTP/1.1 ")[1:]]
        assert answers == [b"200", b"200", status]  # (a body runs into the next status line)
        assert b"GET /slow 0" in raw and b"GET /b 0" in raw


async def streaming(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """Its answer's head and first chunk, then the rest 0.3 s later."""
    conn.start_response(200, [(b"content-type", b"text/plain")], None, True, head.version)
    conn.send(b"part1-")
    conn.flush()
    await asyncio.sleep(0.3)
    conn.send(b"part2")
    conn.end_response()


async def test_a_malformed_request_sent_during_an_answer_waits_for_its_end() -> None:
    async with serving(streaming) as number:
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        try:
            async with asyncio.timeout(5):
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                raw = await reader.readuntil(b"part1-\r\n")
                writer.write(b"GARBAGE\r\n\r\n")
                raw += await reader.read()
        finally:
            writer.close()
    assert b"part2\r\n0\r\n\r\nHTTP/1.1 400 " in raw  # the whole answer, then the 400


async def test_limits(port: int) -> None:
    raw = await exchange(port, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert statuses(raw) == [b"414"]
    raw = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 2000 + b"\r\n\r\n")
    assert statuses(raw) == [b"431"]
    many = b"".join(b"X-%d: v\r\n" % n for n in range(30))
    raw = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert statuses(raw) == [b"431"]


async def test_a_head_that_never_ends_is_refused_as_it_grows() -> None:
    """httptools holds a header line (or name) until it ends: one that never does must be
    refused once the head outgrows the limits (1 KB a line, 4 KB in all), not buffered until
    the header timeout (5 s here)."""
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(echo, ServerStats(), Limits(client_header_timeout=5,
                                                  large_client_header_buffers=1024,
                                                  client_header_buffer_total=4096))
    await plane.serve([(sock, 16)])
    try:
        for start in (b"GET / HTTP/1.1\r\nHost: a\r\nX: ", b"GET / HTTP/1.1\r\nHost: a\r\nX"):
            reader, writer = await asyncio.open_connection("127.0.0.1", number)
            writer.write(start)
            answer = b""
            for _ in range(20):  # a read each; the answer awaited before more is sent (a
                # write to a closed socket would reset the connection, answer and all)
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(reader.read(), 0.2)
                if answer:
                    break
                writer.write(b"v" * 1024)
            writer.close()
            assert statuses(answer) == [b"431"], (start, answer[:200])
    finally:
        await plane.stop(grace=1)
        sock.close()


async def test_trailers_that_never_end_cut_the_connection(port: int) -> None:
    """A chunked body's trailers are held by httptools a line at a time, like a head's: a
    trailer line that never ends cuts the connection once it outgrows a head's limits."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n0\r\nX-Trailer: ")
    cut = False
    for _ in range(20):  # a read each (the limits: 1 KB a line, 4 KB a head)
        try:  # b"" once cut (the request is being answered: nothing is written first)
            await asyncio.wait_for(reader.read(), 0.1)
            cut = True
            break
        except ConnectionError:
            cut = True
            break
        except TimeoutError:
            pass
        writer.write(b"v" * 1024)
        try:
            await writer.drain()
        except ConnectionError:
            cut = True
            break
    writer.close()
    assert cut


async def test_a_long_head_across_many_reads_within_the_limits_is_served(port: int) -> None:
    lines = [b"X-%d: %s\r\n" % (n, b"v" * 180) for n in range(19)]  # 19 x 187: 3.5 KB
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /long HTTP/1.1\r\n")
    for line in lines:  # a read each
        await asyncio.sleep(0.005)
        writer.write(line)
    writer.write(b"Connection: close\r\n\r\n")
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    assert statuses(answer) == [b"200"], answer[:200]


async def test_connections_beyond_worker_connections_are_closed() -> None:
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(echo, ServerStats(), Limits(worker_connections=2))
    await plane.serve([(sock, 16)])
    try:
        held = [await asyncio.open_connection("127.0.0.1", number) for _ in range(2)]
        async with asyncio.timeout(5):
            while len(plane.connections) < 2:
                await asyncio.sleep(0.01)
        assert await exchange(number, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == b""  # refused
        held[0][1].close()
        async with asyncio.timeout(5):
            while len(plane.connections) > 1:
                await asyncio.sleep(0.01)
        answer = await exchange(number, b"GET /again HTTP/1.1\r\nHost: a\r\n"
                                        b"Connection: close\r\n\r\n")
        assert statuses(answer) == [b"200"]
        held[1][1].close()
    finally:
        await plane.stop(grace=1)
        sock.close()


def exchange_tasks() -> int:
    return sum(1 for task in asyncio.all_tasks()
               if getattr(task.get_coro(), "__qualname__", "") == "Downstream._run")


async def test_no_task_waits_between_keep_alive_requests(port: int) -> None:
    """A coroutine exchange runs as a task that ends with it: between keep-alive requests
    nothing of the connection is scheduled (no task per connection waiting for the next
    request)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(3):
        writer.write(b"GET /k%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
        await asyncio.wait_for(reader.readuntil(b"GET /k%d 0" % i), 5)
        assert exchange_tasks() == 0
    writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.1)
    assert exchange_tasks() == 1  # the one running exchange
    await asyncio.wait_for(reader.readuntil(b"GET /slow 0"), 5)
    assert exchange_tasks() == 0
    writer.close()
    await writer.wait_closed()


def later(conn: Downstream, head: RequestHead, body: RequestBody | None) -> Pending:
    """A handler that answers from a callback, 50 ms later: PENDING, then exchange_over."""
    def answer() -> None:
        conn.reply(Reply(200, [], b"later " + head.target), head)
        conn.exchange_over()
    asyncio.get_running_loop().call_later(0.05, answer)
    return PENDING


@asynccontextmanager
async def data_plane(handler: Handler, limits: Limits | None = None,
                     context: ssl.SSLContext | None = None
                     ) -> AsyncIterator[tuple[DataPlane, int]]:
    """A data plane running ``handler`` on a free port (TLS with ``context``)."""
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(handler, ServerStats(), limits or Limits())
    await plane.serve([(sock, 16)], context)
    try:
        yield plane, number
    finally:
        await plane.stop(grace=1)
        sock.close()


@asynccontextmanager
async def serving(handler: Handler, limits: Limits | None = None) -> AsyncIterator[int]:
    """A data plane running ``handler`` on a free port; yields the port."""
    async with data_plane(handler, limits) as (_, number):
        yield number


CALLED_FROM: list[list[str]] = []


def recording(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """Answers at once, noting the functions it was called from."""
    frame, names = sys._getframe(1), []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    CALLED_FROM.append(names)
    conn.reply(Reply(200, [], b"ok"), head)


async def test_requests_are_answered_from_the_loop_not_from_the_read() -> None:
    """The handler runs from the loop's ready queue once the read is parsed, not inside
    ``data_received``: the requests of every connection read in one loop pass go upstream
    together (the upstream is woken once for them)."""
    async with serving(recording) as number:
        CALLED_FROM.clear()
        answer = await exchange(number, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert statuses(answer) == [b"200"]
        assert len(CALLED_FROM) == 1 and "_run_next" in CALLED_FROM[0]
        assert "data_received" not in CALLED_FROM[0]


WAITING: weakref.WeakValueDictionary[str, asyncio.Future[None]] = weakref.WeakValueDictionary()


async def orphaned(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """Waits for a future that only its own task refers to (through the coroutine)."""
    waiting: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    WAITING["it"] = waiting
    await waiting
    conn.reply(Reply(200, [], b"survived"), head)


async def test_a_coroutine_exchange_survives_the_garbage_collector() -> None:
    """The loop holds tasks weakly: the connection keeps its exchange's task, so an exchange
    waiting on something nothing else holds is not collected half-way."""
    async with serving(orphaned) as number:
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        async with asyncio.timeout(5):
            while "it" not in WAITING:
                await asyncio.sleep(0.01)
        gc.collect()
        waiting = WAITING.get("it")
        assert waiting is not None  # collected with its task otherwise
        waiting.set_result(None)
        assert b"survived" in await asyncio.wait_for(reader.read(4096), 5)
        writer.close()


async def test_a_pending_exchange_is_answered_in_order_without_a_task() -> None:
    """A handler may finish its exchange from a callback (what the proxy does for a request
    answered from a pooled upstream connection): pipelined requests still get their answers
    in order, the connection stays open for more, and no task is made for any of them."""
    async with serving(later) as number:
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        writer.write(b"".join(b"GET /p%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3)))
        answers = b""
        async with asyncio.timeout(5):
            while answers.count(b"later /p") < 3:
                assert exchange_tasks() == 0
                answers += await reader.read(4096)
        assert [answers.index(b"later /p%d" % i) for i in range(3)] == sorted(
            answers.index(b"later /p%d" % i) for i in range(3))
        writer.write(b"GET /again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 5)
        assert b"later /again" in rest
        writer.close()


async def test_a_drain_answers_connections_whose_request_is_still_on_its_way() -> None:
    """A connection accepted just before a drain began, whose request arrives after it
    began, is answered (with "Connection: close") instead of being closed as idle; so is a
    request whose head was half sent. A connection that has served a request and sits idle
    is closed at once."""
    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(echo, ServerStats(), Limits(client_header_timeout=5))
    await plane.serve([(sock, 16)])
    fresh = await asyncio.open_connection("127.0.0.1", number)
    half = await asyncio.open_connection("127.0.0.1", number)
    half[1].write(b"GET /half HTTP/1.1\r\nHost: a\r\n")
    served = await asyncio.open_connection("127.0.0.1", number)
    served[1].write(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"GET /first 0" in await served[0].readuntil(b"GET /first 0")
    await asyncio.sleep(0.05)  # every connection accepted
    stopping = asyncio.create_task(plane.stop(grace=5))
    await asyncio.sleep(0.3)  # the drain has looked at them several times
    assert await served[0].read() == b""  # idle after its request: closed
    fresh[1].write(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
    half[1].write(b"\r\n")
    for reader, writer in (fresh, half):
        raw = await asyncio.wait_for(reader.read(), 5)  # answered, then closed
        assert raw.startswith(b"HTTP/1.1 200") and b"connection: close" in raw.lower(), raw
        writer.close()
    served[1].close()
    await asyncio.wait_for(stopping, 5)
    sock.close()


async def test_a_closed_connection_is_freed_without_the_collector(port: int) -> None:
    # the parser holds the protocol's bound methods: were it kept after the close, the
    # connection (and on TLS its SSL object and buffers) would wait for the cyclic collector
    with uncollected(Downstream) as left:
        raw = await exchange(port, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert statuses(raw) == [b"200"]
        await asyncio.sleep(0.05)  # connection_lost runs on the loop after the close
    assert left == []


async def test_each_requests_http_version_and_keep_alive() -> None:
    """The version is read off keep-alive where only HTTP/1.1 can be kept alive without a
    Connection header (no formatting call per request); every other shape asks the parser."""
    seen: list[tuple[str, bool]] = []

    def record(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
        seen.append((head.version, head.keep_alive))
        conn.reply(Reply(200, [], b"ok"), head)

    number = free_port()
    sock = bind(Listener(host="127.0.0.1", port=number))
    plane = DataPlane(record, ServerStats(), Limits(keepalive_timeout=0.2))
    await plane.serve([(sock, 16)])
    shapes = {
        b"HTTP/1.1\r\nHost: a": ("1.1", True),
        b"HTTP/1.1\r\nHost: a\r\nConnection: close": ("1.1", False),
        b"HTTP/1.1\r\nHost: a\r\nConnection: keep-alive": ("1.1", True),
        b"HTTP/1.0": ("1.0", False),
        b"HTTP/1.0\r\nConnection: keep-alive": ("1.0", True),
        b"HTTP/1.0\r\nConnection: close": ("1.0", False),
        b"HTTP/2.0\r\nHost: a": ("2.0", False),
        b"HTTP/0.9": ("0.9", False),
    }
    try:
        for shape in shapes:
            await exchange(number, b"GET / " + shape + b"\r\n\r\n", timeout=2)
    finally:
        await plane.stop(grace=1)
        sock.close()
    assert seen == list(shapes.values())


BIG = 16 * 1024 * 1024  # far more than both sockets' buffers hold


def flood(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """A large answer; ``/close`` ends the connection with it, with no write-buffer limit
    (the close, not pause_writing, is left holding the unsent bytes)."""
    if head.target == b"/close":
        assert conn.transport is not None
        conn.transport.set_write_buffer_limits(high=1 << 30)
        conn.keep_alive(False)
    conn.reply(Reply(200, [], b"x" * BIG), head)


async def wait_gone(plane: DataPlane, within: float) -> float:
    """Seconds until the data plane holds no connection (at most ``within``)."""
    start = time.monotonic()
    while plane.connections and time.monotonic() - start < within:
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@pytest.mark.parametrize("target", [b"/", b"/close"], ids=["paused", "closing"])
async def test_a_client_that_stops_reading_is_cut_after_send_timeout(target: bytes) -> None:
    """nginx's send_timeout: the answer waits for a client that reads nothing; after the
    timeout the connection is cut (a close alone would wait for the client for ever)."""
    for timeout, cut in ((30.0, False), (0.5, True)):
        async with data_plane(flood, Limits(send_timeout=timeout)) as (plane, port):
            client = socket.create_connection(("127.0.0.1", port))
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % target)
            try:
                await asyncio.sleep(0.3)  # accepted, answered, the answer waiting
                assert len(plane.connections) == 1
                await wait_gone(plane, 2.0)
                assert (not plane.connections) is cut
            finally:
                client.close()
