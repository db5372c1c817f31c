"""A request body against ``client_max_body_size`` on a real socket: a Content-Length over it
is known before anything is read, a chunked body fails its read once it grows past it, and 0
means no limit (Kong's default). The exchange's 413 is in
tests/e2e/test_requests_as_nginx_reads_them.py."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors_proxy import Reply
from gateway.proxy.body import BodyTooLarge, RequestBody
from gateway.proxy.connection import Downstream, Limits
from gateway.proxy.http1 import RequestHead
from tests.proxy.test_connection import serving


async def sized(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """Answers what became of the body: ``refused <why>``, ``failed <why>`` or its size."""
    assert body is not None
    if body.too_large is not None:
        text = f"refused {body.too_large}"
    else:
        size = 0
        try:
            while chunk := await body.read():
                size += len(chunk)
            text = f"read {size}"
        except BodyTooLarge as exc:
            text = f"failed {exc}"
    conn.keep_alive(False)
    conn.reply(Reply(200, [], text.encode()), head)


def chunked(*sizes: int) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (n, b"x" * n) for n in sizes) + b"0\r\n\r\n"


LENGTH = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(("limit", "request_bytes", "answer"), [
    (10, LENGTH % 10 + b"x" * 10, b"read 10"),
    (10, LENGTH % 11, b"refused client intended to send too large body: 11 bytes"),
    (10, CHUNKED + chunked(4, 6), b"read 10"),
    (10, CHUNKED + chunked(6, 6),
     b"refused client intended to send too large chunked body: 12+ bytes"),
    (0, LENGTH % 100000 + b"x" * 100000, b"read 100000"),  # 0: no limit
    (0, CHUNKED + chunked(*[4096] * 30), b"read 122880"),
])
async def test_a_body_against_client_max_body_size(limit: int, request_bytes: bytes,
                                                    answer: bytes) -> None:
    async with serving(sized, Limits(client_max_body_size=limit)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert raw.endswith(b"\r\n\r\n" + answer), raw


async def test_a_chunked_body_that_grows_past_the_limit_fails_its_read() -> None:
    """The excess arrives after the exchange began reading: the read fails."""
    async with serving(sized, Limits(client_max_body_size=10)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(CHUNKED + b"6\r\nxxxxxx\r\n")
        await asyncio.sleep(0.2)  # the exchange has read the first chunk and waits
        writer.write(b"6\r\nxxxxxx\r\n0\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert raw.endswith(b"failed client intended to send too large chunked body: 12+ bytes")
