"""Forwarding headers, both ways (Kong's rules), bytes in and bytes out."""

from __future__ import annotations

from gateway.proxy.forwarding import Forwarded, downstream_headers, upstream_headers

FACTS = Forwarded(client_ip="10.1.1.1", scheme="https", host="site.test", port=8443,
                  path="/api/x", prefix="/api", version="1.1", request_id="r1")


def test_upstream_headers() -> None:
    client = [(b"Host", b"site.test"), (b"X-Forwarded-For", b"1.1.1.1"),
              (b"X-Forwarded-For", b"2.2.2.2"), (b"Via", b"1.0 edge"),
              (b"Connection", b"keep-alive, X-Secret"), (b"X-Secret", b"s"),
              (b"Keep-Alive", b"timeout=5"), (b"Expect", b"100-continue"),
              (b"X-Kong-Request-Id", b"forged"), (b"X-Name", b"r\xe9sum\x85"),
              (b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")]
    out = upstream_headers(client, FACTS)
    assert out == [
        (b"X-Name", b"r\xe9sum\x85"),  # bytes that are not UTF-8 pass unchanged
        (b"X-Forwarded-For", b"1.1.1.1, 2.2.2.2, 10.1.1.1"),
        (b"X-Forwarded-Proto", b"https"), (b"X-Forwarded-Host", b"site.test"),
        (b"X-Forwarded-Port", b"8443"), (b"X-Forwarded-Path", b"/api/x"),
        (b"X-Forwarded-Prefix", b"/api"), (b"X-Real-IP", b"10.1.1.1"),
        (b"Via", b"1.0 edge, 1.1 ramparts/0.1.0"), (b"X-Kong-Request-Id", b"r1")]


def test_downstream_headers() -> None:
    upstream = [(b"Content-Type", b"text/plain"), (b"Connection", b"close, X-Hop"),
                (b"X-Hop", b"1"), (b"Transfer-Encoding", b"chunked"),
                (b"Content-Length", b"9"), (b"Set-Cookie", b"a=1")]
    out = downstream_headers(upstream, upstream_ms=7, proxy_ms=1, request_id="r1",
                             set_cookie=b"lb=x; Path=/")
    assert out == [(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1"),
                   (b"set-cookie", b"lb=x; Path=/"), (b"via", b"1.1 ramparts/0.1.0"),
                   (b"x-kong-upstream-latency", b"7"), (b"x-kong-proxy-latency", b"1"),
                   (b"x-kong-request-id", b"r1")]
