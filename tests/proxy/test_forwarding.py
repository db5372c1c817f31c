"""Forwarding headers, both ways (Kong's rules), bytes in and bytes out."""

from __future__ import annotations

import pytest

from gateway.plugins.pdk import UpstreamChanges
from gateway.proxy import http1
from gateway.proxy.forwarding import (
    Forwarded,
    Hop,
    Memo,
    downstream_headers,
    forwarded_headers,
    header_policy,
    own_reply_headers,
    split_response,
    tail_headers,
    upstream_headers,
)

FACTS = Forwarded(hop=Hop("10.1.1.1", "https", 8443), host="site.test", path="/api/x",
                  prefix="/api", version="1.1", request_id=b"r1")


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


def test_a_connections_memo_gives_what_the_pass_gives() -> None:
    """A keep-alive connection's memo: the same headers again reuse the last pass, with the
    new request id and the plugins' additions; any changed input makes a new pass; the
    list returned is the caller's to extend, never the memo's own."""
    memo = Memo()
    client = [(b"Host", b"site.test"), (b"X-Forwarded-For", b"1.1.1.1"), (b"X-A", b"1")]
    first = upstream_headers(client, FACTS, memo=memo)
    assert first == upstream_headers(client, FACTS)
    first.append((b"Content-Length", b"3"))  # the caller's own framing
    again = Forwarded(FACTS.hop, FACTS.host, FACTS.path, FACTS.prefix, FACTS.version, b"r2")
    second = upstream_headers(list(client), again, memo=memo)  # equal, not the same list
    assert second == upstream_headers(client, again)
    assert second[-1] == (b"X-Kong-Request-Id", b"r2")
    assert upstream_headers(client, again, memo=memo) == upstream_headers(client, again)
    added = UpstreamChanges(frozenset({b"x-a"}), ((b"X-A", b"2"),))
    assert upstream_headers(client, again, changes=added, memo=memo) == \
        upstream_headers(client, again, changes=added)
    other = [(b"Host", b"site.test"), (b"X-B", b"2")]
    assert upstream_headers(other, again, memo=memo) == upstream_headers(other, again)
    for moved in (Forwarded(FACTS.hop, FACTS.host, FACTS.path, None, "1.1", b"r3"),
                  Forwarded(FACTS.hop, FACTS.host, "/elsewhere", None, "1.0", b"r3")):
        assert upstream_headers(other, moved, memo=memo) == upstream_headers(other, moved)


def test_a_connections_memo_serialises_the_repeated_head_once() -> None:
    """The memo's head is the request line, Host and the forwarded part as the full head
    would have them; a new target, host or forwarding pass makes it anew, and a request's
    own tail (its id, a plugin's additions, framing) never enters it."""
    memo = Memo()
    client = [(b"Host", b"site.test"), (b"X-A", b"1")]
    facts = (FACTS.hop, FACTS.host, FACTS.path, FACTS.prefix, FACTS.version)
    fwd = forwarded_headers(client, *facts, memo=memo)
    assert fwd == upstream_headers(client, FACTS)[:-1]  # all but the request id
    assert forwarded_headers(list(client), *facts, memo=memo) is fwd  # repeated: reused
    tail = tail_headers(b"r9")
    assert tail == [(b"X-Kong-Request-Id", b"r9")]

    def head(target: bytes, host: bytes, forwarded: list[tuple[bytes, bytes]]) -> bytes:
        return memo.head("GET", target, host, forwarded) + http1.head_end(tail)

    def whole(target: bytes, host: bytes, forwarded: list[tuple[bytes, bytes]]) -> bytes:
        return http1.request_head("GET", target, [(b"Host", host), *forwarded, *tail])

    assert head(b"/a", b"up", fwd) == whole(b"/a", b"up", fwd)
    assert memo.head("GET", b"/a", b"up", fwd) is memo.head("GET", b"/a", b"up", fwd)
    assert head(b"/b", b"up", fwd) == whole(b"/b", b"up", fwd)
    assert head(b"/b", b"other", fwd) == whole(b"/b", b"other", fwd)
    moved = forwarded_headers(client, FACTS.hop, "else.test", FACTS.path, FACTS.prefix,
                              "1.1", memo=memo)
    assert moved is not fwd and head(b"/b", b"other", moved) == whole(b"/b", b"other", moved)
    assert b"r9" not in memo.head("GET", b"/b", b"other", moved)
    dropped = UpstreamChanges(frozenset({b"x-kong-request-id"}), ((b"X-P", b"1"),))
    assert tail_headers(b"r9", changes=dropped) == [(b"X-P", b"1")]


FORGED, NAME, DN = (b"X-Consumer-ID", b"forged"), (b"X-Name", b"n"), (b"x-client-cert-dn", b"x")


@pytest.mark.parametrize(("drop", "add", "kept", "own_dropped"), [
    # a plugin's header replaces the client's copy, and comes last
    ({b"x-consumer-id"}, [(b"X-Consumer-ID", b"u1")], [NAME, DN], ()),
    # cleared: the client's copy never reaches the upstream, nothing is added
    ({b"x-client-cert-dn"}, [], [FORGED, NAME], ()),
    # a plugin that clears one of the gateway's own headers removes it too
    ({b"x-real-ip", b"via"}, [], [FORGED, NAME, DN], (b"X-Real-IP", b"Via")),
])
def test_plugins_changes_in_the_same_pass(drop: set[bytes], add: list[tuple[bytes, bytes]],
                                          kept: list[tuple[bytes, bytes]],
                                          own_dropped: tuple[bytes, ...]) -> None:
    own = [pair for pair in upstream_headers([], FACTS) if pair[0] not in own_dropped]
    changes = UpstreamChanges(frozenset(drop), tuple(add))
    out = upstream_headers([FORGED, NAME, DN], FACTS, changes=changes)
    assert out == [*kept, *own, *add]


def test_downstream_headers() -> None:
    upstream = [(b"Content-Type", b"text/plain"), (b"Connection", b"close, X-Hop"),
                (b"X-Hop", b"1"), (b"Transfer-Encoding", b"chunked"),
                (b"Content-Length", b"9"), (b"Set-Cookie", b"a=1")]
    end_to_end, length, chunked, upgrade = split_response(upstream)
    assert (length, chunked, upgrade) == (None, True, None)  # chunking voids the length
    out = downstream_headers(end_to_end, upstream_ms=7, proxy_ms=1, request_id=b"r1",
                             set_cookie=b"lb=x; Path=/")
    assert out == [(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1"),
                   (b"set-cookie", b"lb=x; Path=/"), (b"via", b"1.1 ramparts/0.1.0"),
                   (b"x-kong-upstream-latency", b"7"), (b"x-kong-proxy-latency", b"1"),
                   (b"x-kong-request-id", b"r1")]


@pytest.mark.parametrize(("headers", "expected"), [
    ([(b"Content-Length", b"5"), (b"Connection", b"keep-alive"), (b"X-A", b"1")],
     ([(b"X-A", b"1")], b"5", False, None)),
    ([(b"content-length", b"5"), (b"content-length", b"6")], ([], b"6", False, None)),
    ([(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"upgrade", b"h2c")],
     ([], None, False, b"websocket")),
    ([(b"X-Hop", b"1"), (b"CONNECTION", b"Keep-Alive, x-hop"), (b"X-B", b"2")],
     ([(b"X-B", b"2")], None, False, None)),
])
def test_split_response(headers: list[tuple[bytes, bytes]],
                        expected: tuple[object, ...]) -> None:
    """Framing, Upgrade and hop-by-hop headers out of an upstream response in one pass."""
    assert split_response(headers) == expected


@pytest.mark.parametrize(("tokens", "on"), [
    (("server_tokens", "latency_tokens", "X-Kong-Request-Id"),
     {"via", "server", "upstream_latency", "proxy_latency", "response_latency", "request_id"}),
    (("off",), set()),
    (("server_tokens",), {"via", "server"}),
    (("X-Kong-Proxy-Latency", "via"), {"proxy_latency", "via"}),
])
def test_header_policy(tokens: tuple[str, ...], on: set[str]) -> None:
    policy = header_policy(tokens, ("off",))
    fields = {"via", "server", "upstream_latency", "proxy_latency", "response_latency",
              "request_id"}
    assert {f for f in fields if getattr(policy, f)} == on
    assert not policy.upstream_request_id
    assert header_policy((), ("X-Kong-Request-Id",)).upstream_request_id


def test_headers_turned_off() -> None:
    off = header_policy(("off",), ("off",))
    out = upstream_headers([(b"Via", b"1.0 edge")], FACTS, off)
    assert (b"Via", b"1.0 edge") in out and not any(n == b"X-Kong-Request-Id" for n, _ in out)
    down = downstream_headers([(b"A", b"1")], upstream_ms=1, proxy_ms=1, request_id=b"r",
                              set_cookie=None, policy=off)
    assert down == [(b"A", b"1")]
    made = [(b"content-type", b"x"), (b"server", b"s"), (b"x-kong-request-id", b"r"),
            (b"x-kong-response-latency", b"0")]
    assert own_reply_headers(made, off) == [(b"content-type", b"x")]
