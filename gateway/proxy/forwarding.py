"""The headers the upstream receives and the client gets back (Kong's rules, pure).

Values stay bytes from end to end: a header that is not UTF-8 reaches the upstream exactly
as the client sent it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gateway import version
from gateway.plugins.pdk import NO_CHANGES, UpstreamChanges
from gateway.proxy.http1 import HOP_BY_HOP, Headers, connection_tokens, head_start

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


class Hop:
    """One client connection's share of the forwarding headers, encoded once for all its
    requests (a keep-alive connection sends many)."""

    __slots__ = ("ip", "port", "proto", "real_ip", "xff")

    def __init__(self, client_ip: str, scheme: str, port: int) -> None:
        self.ip = client_ip.encode()
        self.xff = (b"X-Forwarded-For", self.ip)
        self.proto = (b"X-Forwarded-Proto", scheme.encode())
        self.port = (b"X-Forwarded-Port", str(port).encode())
        self.real_ip = (b"X-Real-IP", self.ip)


@dataclass(slots=True)  # made per request: not frozen, whose __init__ is slower
class Forwarded:
    """The facts of one request the forwarding headers are made of."""

    # the data plane makes one per request by position (a class called with keywords
    # gets them in a dict): the fields' order is part of its interface
    hop: Hop           # the connection's
    host: str          # the request's host, without port
    path: str          # the request path as received (X-Forwarded-Path)
    prefix: str | None  # the stripped prefix, when strip_path removed one
    version: str       # the client's HTTP version
    request_id: bytes


_VIA_BY_VERSION = {v: v.encode() + b" " + VIA for v in ("1.0", "1.1")}
_NOT_FORWARDED = HOP_BY_HOP | OWN_REQUEST  # and X-Forwarded-For, Via: appended to
# the names a client's header is not forwarded under, with a plugin's dropped names: a
# handful of distinct sets (one per combination of plugins), each made once
_SKIPPED: dict[frozenset[bytes], frozenset[bytes]] = {}
_OWN_LOWER = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                        b"x-forwarded-port", b"x-forwarded-path", b"x-forwarded-prefix",
                        b"x-real-ip", b"via", b"x-kong-request-id"})


class Memo:
    """One connection's last forwarding pass: a keep-alive client sends the same headers
    request after request, so the next request with the same inputs reuses the result (only
    the request id and the plugins' additions are new each time), and the request line,
    ``Host`` and those headers serialised, while the target and host repeat too."""

    __slots__ = ("head_bytes", "head_key", "head_of", "headers", "key")

    def __init__(self) -> None:
        self.key: tuple[object, ...] | None = None
        self.headers: Headers = []
        self.head_key: tuple[str, bytes, bytes] | None = None
        self.head_of: Headers | None = None  # the pass head_bytes serialised
        self.head_bytes = b""

    def head(self, method: str, target: bytes, host: bytes, forwarded: Headers) -> bytes:
        """The request line, ``Host`` and ``forwarded`` (a pass of this memo's) as bytes,
        each line ended: what ``http1.head_end`` completes."""
        key = (method, target, host)
        if self.head_of is not forwarded or self.head_key != key:
            self.head_key, self.head_of = key, forwarded
            self.head_bytes = head_start(method, target, [(b"Host", host), *forwarded])
        return self.head_bytes


def forwarded_headers(client: Headers, hop: Hop, host: str, path: str, prefix: str | None,
                      version: str, policy: HeaderPolicy = DEFAULT_POLICY,
                      drop: frozenset[bytes] = frozenset(), memo: Memo | None = None
                      ) -> Headers:
    """The client's end-to-end headers and the gateway's forwarding headers: everything but
    ``Host`` (which depends on the target of each attempt), the request id and the plugins'
    additions (``tail_headers``) and the body's framing (which the exchange decides).
    The facts are ``Forwarded``'s, by position (made into one only when the pass runs: a
    keep-alive connection's memo answers most requests). ``drop``: names a plugin's
    ``service_request`` leaves out. With ``memo``, the list may be the memo's own (the inputs
    repeated): the caller must not change it."""
    # every input of the pass (`client` compared by value, item by item; the others are the
    # same objects from one request to the next)
    key = (client, hop, host, path, prefix, version, policy, drop)
    if memo is not None and memo.key == key:
        return memo.headers
    out = _forwarded(client, Forwarded(hop, host, path, prefix, version, b""), policy, drop)
    if memo is not None:
        memo.key, memo.headers = key, out
    return out


def tail_headers(request_id: bytes, policy: HeaderPolicy = DEFAULT_POLICY,
                 changes: UpstreamChanges = NO_CHANGES) -> Headers:
    """What follows the forwarded headers, new for each request: the request id, then the
    plugins' added headers; a new list, the caller's to extend."""
    out: Headers = [(b"X-Kong-Request-Id", request_id)] \
        if policy.upstream_request_id and b"x-kong-request-id" not in changes.drop else []
    out += changes.add
    return out


def upstream_headers(client: Headers, facts: Forwarded,
                     policy: HeaderPolicy = DEFAULT_POLICY,
                     changes: UpstreamChanges = NO_CHANGES, memo: Memo | None = None
                     ) -> Headers:
    """``forwarded_headers`` and ``tail_headers`` in one new list, the caller's to extend:
    the whole pass in the form its tests state it (the data plane keeps the two parts apart,
    so that the memo can serialise the first once per connection)."""
    return [*forwarded_headers(client, facts.hop, facts.host, facts.path, facts.prefix,
                               facts.version, policy, changes.drop, memo),
            *tail_headers(facts.request_id, policy, changes)]


def _forwarded(client: Headers, facts: Forwarded, policy: HeaderPolicy,
               drop: frozenset[bytes]) -> Headers:
    skip = _skipped(drop) if drop else _NOT_FORWARDED
    xff: list[bytes] = []
    via: list[bytes] = []
    out: Headers = []
    connection: list[bytes] = []
    for pair in client:  # one pass, each name lower-cased once
        lower = pair[0].lower()
        if lower not in skip:
            out.append(pair)
        elif lower == b"x-forwarded-for":
            xff.append(pair[1])
        elif lower == b"via":
            via.append(pair[1])
        elif lower == b"connection":
            connection.append(pair[1])
    listed = _listed(connection)  # names the client's Connection lists are this hop's only
    if listed:  # rare: a second pass
        out = [pair for pair in out if pair[0].lower() not in listed]
    own = _own_headers(facts, policy, xff, via)
    if drop and not drop.isdisjoint(_OWN_LOWER):  # a plugin clears one of the gateway's
        own = [pair for pair in own if pair[0].lower() not in drop]
    out += own
    return out


def _skipped(drop: frozenset[bytes]) -> frozenset[bytes]:
    skip = _SKIPPED.get(drop)
    if skip is None:
        if len(_SKIPPED) >= 256:  # bounded, whatever plugins do
            _SKIPPED.clear()
        skip = _SKIPPED[drop] = _NOT_FORWARDED | drop
    return skip


def _own_headers(facts: Forwarded, policy: HeaderPolicy, xff: list[bytes],
                 via: list[bytes]) -> Headers:
    hop = facts.hop
    out: Headers = [
        (b"X-Forwarded-For", b", ".join([*xff, hop.ip])) if xff else hop.xff,
        hop.proto,
        (b"X-Forwarded-Host", facts.host.encode("latin-1")),
        hop.port,
        (b"X-Forwarded-Path", facts.path.encode("latin-1")),
    ]
    if facts.prefix:
        out.append((b"X-Forwarded-Prefix", facts.prefix.encode("latin-1")))
    out.append(hop.real_ip)
    if policy.via:
        own = _VIA_BY_VERSION.get(facts.version) or facts.version.encode() + b" " + VIA
        out.append((b"Via", b", ".join([*via, own]) if via else own))
    elif via:
        out.append((b"Via", b", ".join(via)))  # the client's hops still pass
    return out  # the request id, new for each request, is added after the memo


class ResponseHeaders:
    """An upstream response's headers sorted as the parser hands them over, each name
    lower-cased once: the end-to-end ones kept in order; Content-Length, chunking, Upgrade
    and what ``Connection`` lists set aside (hop-by-hop headers and framing are not
    end-to-end). The origin connection gives ``add`` to its parser as the header callback:
    no list of raw headers to walk a second time."""

    __slots__ = ("chunked", "connection", "length", "out", "upgrade")

    def __init__(self) -> None:
        self.out: Headers = []
        self.connection: list[bytes] | None = None
        self.length: bytes | None = None
        self.upgrade: bytes | None = None
        self.chunked = False

    def add(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower not in _RESPONSE_HOP:
            self.out.append((name, value))
        elif lower == b"content-length":
            self.length = value
        elif lower == b"transfer-encoding":
            self.chunked = True
        elif lower == b"connection":
            if self.connection is None:
                self.connection = []
            self.connection.append(value)
        elif lower == b"upgrade" and self.upgrade is None:
            self.upgrade = value

    def take(self) -> tuple[Headers, bytes | None, bool, bytes | None]:
        """``(end-to-end headers, Content-Length, chunked, Upgrade)``, and a clean slate for
        the next response. A Transfer-Encoding voids the length (the last Content-Length
        counts otherwise)."""
        out, length, chunked, upgrade = self.out, self.length, self.chunked, self.upgrade
        connection = self.connection
        if connection is not None:
            self.connection = None
            # nearly every response's Connection lists nothing but keep-alive or close
            if len(connection) > 1 or connection[0].lower() not in _PLAIN_CONNECTION:
                listed = _listed(connection)
                if listed:  # rare: a second pass
                    out = [pair for pair in out if pair[0].lower() not in listed]
        self.out = []
        self.length = self.upgrade = None
        self.chunked = False
        return out, None if chunked else length, chunked, upgrade


def split_response(upstream: Headers) -> tuple[Headers, bytes | None, bool, bytes | None]:
    """``ResponseHeaders`` over a whole list of headers."""
    sorter = ResponseHeaders()
    for name, value in upstream:
        sorter.add(name, value)
    return sorter.take()


_RESPONSE_HOP = HOP_BY_HOP | {b"content-length"}  # framing is the writer's


def downstream_headers(end_to_end: Headers, upstream_ms: int, proxy_ms: int,
                       request_id: bytes, set_cookie: bytes | None,
                       policy: HeaderPolicy = DEFAULT_POLICY) -> Headers:
    """The client's response headers: the upstream's end-to-end ones (``split_response``),
    Kong's own added (to the same list, which is the caller's to give away)."""
    out = end_to_end
    if set_cookie is not None:
        out.append((b"set-cookie", set_cookie))
    if policy.via:
        out.append(_VIA_PAIR)
    if policy.upstream_latency:
        out.append((b"x-kong-upstream-latency", str(upstream_ms).encode()))
    if policy.proxy_latency:
        out.append((b"x-kong-proxy-latency", str(proxy_ms).encode()))
    if policy.request_id:
        out.append((b"x-kong-request-id", request_id))
    return out


_VIA_PAIR = (b"via", VIA_HEADER)
# Connection values that list nothing beyond hop-by-hop names (nearly every response's)
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"upgrade"})


def _listed(values: list[bytes]) -> frozenset[bytes]:
    """The names ``Connection`` values list, less the hop-by-hop ones dropped anyway
    (``keep-alive``, ``upgrade``...): usually nothing is left, and no second pass is needed."""
    if not values or (len(values) == 1 and values[0].lower() in _PLAIN_CONNECTION):
        return _NOTHING
    return connection_tokens([(b"connection", v) for v in values]) - HOP_BY_HOP


_NOTHING: frozenset[bytes] = frozenset()


def own_reply_headers(headers: Headers, policy: HeaderPolicy) -> Headers:
    """An answer the gateway made, without the headers ``policy`` turns off."""
    if policy == DEFAULT_POLICY:
        return headers
    drop = {name for name, on in ((b"server", policy.server),
                                  (b"x-kong-response-latency", policy.response_latency),
                                  (b"x-kong-request-id", policy.request_id)) if not on}
    return [(n, v) for n, v in headers if n.lower() not in drop]
