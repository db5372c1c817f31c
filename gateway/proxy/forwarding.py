"""The headers the upstream receives and the client gets back (Kong's rules, pure).

Values stay bytes from end to end: a header that is not UTF-8 reaches the upstream exactly
as the client sent it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway import version
from gateway.proxy.http1 import HOP_BY_HOP, Headers, connection_tokens

VIA = f"ramparts/{version.__version__}".encode()
VIA_HEADER = b"1.1 " + VIA
# set by the gateway itself: a client's value is never forwarded. `Expect: 100-continue` is
# answered by the gateway (nginx drops it too); forwarded, an upstream would wait for a
# second 100 that nobody sends
OWN_REQUEST = frozenset({b"host", b"x-real-ip", b"x-forwarded-proto", b"x-forwarded-host",
                         b"x-forwarded-port", b"x-forwarded-path", b"x-forwarded-prefix",
                         b"x-forwarded-for", b"via", b"x-kong-request-id", b"expect",
                         b"content-length"})


@dataclass(frozen=True, slots=True)
class HeaderPolicy:
    """Which of its own headers the gateway adds: Kong's ``headers`` and
    ``headers_upstream`` settings, read once."""

    via: bool = True                 # Via, both ways (server_tokens)
    server: bool = True              # Server on answers the gateway makes (server_tokens)
    upstream_latency: bool = True    # X-Kong-Upstream-Latency (latency_tokens)
    proxy_latency: bool = True       # X-Kong-Proxy-Latency (latency_tokens)
    response_latency: bool = True    # X-Kong-Response-Latency (latency_tokens)
    request_id: bool = True          # X-Kong-Request-Id on responses
    upstream_request_id: bool = True  # X-Kong-Request-Id to the upstream (headers_upstream)


TOKENS: dict[str, tuple[str, ...]] = {
    "server_tokens": ("via", "server"),
    "latency_tokens": ("upstream_latency", "proxy_latency", "response_latency"),
    "server": ("server",), "via": ("via",),
    "x-kong-upstream-latency": ("upstream_latency",),
    "x-kong-proxy-latency": ("proxy_latency",),
    "x-kong-response-latency": ("response_latency",),
    "x-kong-request-id": ("request_id",),
    "off": (),
}


def header_policy(headers: Iterable[str], upstream: Iterable[str]) -> HeaderPolicy:
    """Unknown names are refused when the settings load (``TOKENS`` is the list)."""
    on = {field for token in headers for field in TOKENS[token.lower()]}
    fields = ("via", "server", "upstream_latency", "proxy_latency", "response_latency",
              "request_id")
    return HeaderPolicy(**{f: f in on for f in fields},
                        upstream_request_id=any(t.lower() == "x-kong-request-id"
                                                for t in upstream))


DEFAULT_POLICY = HeaderPolicy()


@dataclass(slots=True)  # made per request: not frozen, whose __init__ is slower
class Forwarded:
    """The facts of one request the forwarding headers are made of."""

    client_ip: str
    scheme: str
    host: str          # the request's host, without port
    port: int          # the listener's port
    path: str          # the request path as received (X-Forwarded-Path)
    prefix: str | None  # the stripped prefix, when strip_path removed one
    version: str       # the client's HTTP version
    request_id: str


def upstream_headers(client: Headers, facts: Forwarded,
                     policy: HeaderPolicy = DEFAULT_POLICY) -> Headers:
    """Everything but ``Host`` (which depends on the target of each attempt) and the body's
    framing (which the exchange decides)."""
    xff: list[bytes] = []
    via: list[bytes] = []
    out: Headers = []
    lowered: list[bytes] = []  # of ``out``, for the rare second pass below
    connection: list[bytes] = []
    for name, value in client:  # one pass, each name lower-cased once
        lower = name.lower()
        if lower == b"x-forwarded-for":
            xff.append(value)
        elif lower == b"via":
            via.append(value)
        elif lower not in HOP_BY_HOP and lower not in OWN_REQUEST:
            out.append((name, value))
            lowered.append(lower)
        elif lower == b"connection":
            connection.append(value)
    listed = _listed(connection)  # names the client's Connection lists are this hop's only
    if listed:
        out = [pair for pair, lower in zip(out, lowered, strict=True) if lower not in listed]
    ip = facts.client_ip.encode()
    out.append((b"X-Forwarded-For", b", ".join([*xff, ip])))
    out.append((b"X-Forwarded-Proto", facts.scheme.encode()))
    out.append((b"X-Forwarded-Host", facts.host.encode("latin-1")))
    out.append((b"X-Forwarded-Port", b"%d" % facts.port))
    out.append((b"X-Forwarded-Path", facts.path.encode("latin-1")))
    if facts.prefix:
        out.append((b"X-Forwarded-Prefix", facts.prefix.encode("latin-1")))
    out.append((b"X-Real-IP", ip))
    if policy.via:
        out.append((b"Via", b", ".join([*via, facts.version.encode() + b" " + VIA])))
    elif via:
        out.append((b"Via", b", ".join(via)))  # the client's hops still pass
    if policy.upstream_request_id:
        out.append((b"X-Kong-Request-Id", facts.request_id.encode()))
    return out


def downstream_headers(upstream: Headers, *, upstream_ms: int, proxy_ms: int,
                       request_id: str, set_cookie: bytes | None,
                       policy: HeaderPolicy = DEFAULT_POLICY) -> Headers:
    """The upstream's response headers for the client: hop-by-hop ones (and those its
    ``Connection`` lists) removed, framing left to the writer, Kong's own added."""
    out: Headers = []
    lowered: list[bytes] = []
    connection: list[bytes] = []
    for name, value in upstream:  # one pass, each name lower-cased once
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower != b"content-length":
            out.append((name, value))
            lowered.append(lower)
        elif lower == b"connection":
            connection.append(value)
    listed = _listed(connection)
    if listed:
        out = [pair for pair, lower in zip(out, lowered, strict=True) if lower not in listed]
    if set_cookie is not None:
        out.append((b"set-cookie", set_cookie))
    if policy.via:
        out.append((b"via", VIA_HEADER))
    if policy.upstream_latency:
        out.append((b"x-kong-upstream-latency", b"%d" % upstream_ms))
    if policy.proxy_latency:
        out.append((b"x-kong-proxy-latency", b"%d" % proxy_ms))
    if policy.request_id:
        out.append((b"x-kong-request-id", request_id.encode()))
    return out


def _listed(values: list[bytes]) -> frozenset[bytes]:
    """The names ``Connection`` values list, less the hop-by-hop ones dropped anyway
    (``keep-alive``, ``upgrade``...): usually nothing is left, and no second pass is needed."""
    if not values:
        return frozenset()
    return connection_tokens([(b"connection", v) for v in values]) - HOP_BY_HOP


def own_reply_headers(headers: Headers, policy: HeaderPolicy) -> Headers:
    """An answer the gateway made, without the headers ``policy`` turns off."""
    if policy == DEFAULT_POLICY:
        return headers
    drop = {name for name, on in ((b"server", policy.server),
                                  (b"x-kong-response-latency", policy.response_latency),
                                  (b"x-kong-request-id", policy.request_id)) if not on}
    return [(n, v) for n, v in headers if n.lower() not in drop]
