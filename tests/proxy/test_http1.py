"""The sans-io HTTP/1 layer: request checks, targets, and the bytes we write."""

from __future__ import annotations

import pytest

from gateway.proxy import http1
from gateway.proxy.http1 import RequestHead


def head(method: str = "GET", version: str = "1.1", *headers: tuple[bytes, bytes]
         ) -> RequestHead:
    return RequestHead(method=method, target=b"/", version=version, headers=list(headers))


@pytest.mark.parametrize(("request_head", "status"), [
    (head("GET", "1.1", (b"Host", b"a")), None),
    (head("GET", "1.0"), None),  # HTTP/1.0 needs no Host
    (head("GET", "1.1"), 400),  # HTTP/1.1 without Host
    (head("GET", "1.1", (b"Host", b"a"), (b"host", b"b")), 400),  # two Hosts
    (head("TRACE", "1.1", (b"Host", b"a")), 405),  # nginx refuses TRACE
])
def test_check_request(request_head: RequestHead, status: int | None) -> None:
    refusal = http1.check_request(request_head)
    assert (refusal.status if refusal else None) == status


@pytest.mark.parametrize(("target", "expected"), [
    (b"/a/b?x=1", (None, b"/a/b", b"x=1")),
    (b"/a?", (None, b"/a", b"")),
    (b"http://Site.test:8000/p?q", (b"Site.test:8000", b"/p", b"q")),
    (b"https://site.test", (b"site.test", b"/", b"")),
    (b"*", (None, b"*", b"")),
])
def test_split_target(target: bytes, expected: tuple[bytes | None, bytes, bytes]) -> None:
    assert http1.split_target(target) == expected


def test_heads_and_chunks() -> None:
    assert http1.response_head(200, [(b"a", b"1")]) == b"HTTP/1.1 200 OK\r\na: 1\r\n\r\n"
    assert http1.response_head(599, []) == b"HTTP/1.1 599 Unknown\r\n\r\n"
    assert http1.request_head("POST", b"/x?y", [(b"Host", b"h")]) == \
        b"POST /x?y HTTP/1.1\r\nHost: h\r\n\r\n"
    assert http1.request_head("GET", b"/", []) == b"GET / HTTP/1.1\r\n\r\n"
    # a head begun and ended apart is the same head
    start = http1.head_start("GET", b"/p", [(b"Host", b"h"), (b"A", b"1")])
    assert start + http1.head_end([(b"B", b"2")]) == \
        http1.request_head("GET", b"/p", [(b"Host", b"h"), (b"A", b"1"), (b"B", b"2")])
    assert start + http1.head_end([]) == \
        http1.request_head("GET", b"/p", [(b"Host", b"h"), (b"A", b"1")])
    assert http1.chunk(b"hello world, 17 b") == b"11\r\nhello world, 17 b\r\n"


@pytest.mark.parametrize(("status", "method", "body"), [
    (200, "GET", True), (200, "HEAD", False), (204, "GET", False), (304, "GET", False),
    (101, "GET", False), (404, "POST", True),
])
def test_response_has_body(status: int, method: str, body: bool) -> None:
    assert http1.response_has_body(status, method) is body


def test_connection_tokens_and_has_body() -> None:
    assert http1.connection_tokens([(b"Connection", b"close, X-Drop"), (b"x", b"y")]) == \
        {b"close", b"x-drop"}
    assert head("POST", "1.1", (b"Content-Length", b"3")).has_body
    assert not head("POST", "1.1", (b"Content-Length", b"0")).has_body
    assert head("POST", "1.1", (b"Transfer-Encoding", b"chunked")).has_body
    assert not head("GET", "1.1").has_body
