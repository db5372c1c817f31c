"""Sans-io HTTP/1.1: request heads as the downstream parser hands them over, checks that turn
a malformed request into a status, and the bytes of the heads and bodies we write.

Pure: bytes and tuples in, bytes or decisions out. httptools (llhttp, strict) already refuses
the smuggling shapes (Content-Length with Transfer-Encoding, two Content-Lengths, obs-fold,
bare LF, bad header characters); what it lets through and nginx refuses is checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}
REASONS[494] = b"Request Header Or Cookie Too Large"  # nginx's own
# RFC 9110 §7.6.1, plus the non-standard ones proxies strip (nginx does too)
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade"})
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class RequestHead:
    """One request as received: names keep their case, values their bytes."""

    # the data plane makes one per request by position (a class called with keywords
    # gets them in a dict): the fields' order is part of its interface
    method: str
    target: bytes
    version: str
    headers: Headers = field(default_factory=list)
    keep_alive: bool = True
    upgrade: bool = False
    # lower-case name -> first value, and the count of Host headers: built by the parser as
    # the headers arrive, so a lookup is a dict read, not a scan lower-casing every name
    index: dict[bytes, bytes] | None = None
    hosts: int = 0

    def header(self, name: bytes) -> bytes | None:
        """The first value of ``name`` (lower case)."""
        index = self.index
        if index is not None:
            return index.get(name)
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def has_body(self) -> bool:
        index = self.index
        if index is None:
            length, te = self.header(b"content-length"), self.header(b"transfer-encoding")
        else:  # read for every request: two dict reads, not two calls
            length, te = index.get(b"content-length"), index.get(b"transfer-encoding")
        return (length is not None and length.strip() != b"0") or te is not None


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str


def check_request(head: RequestHead) -> Refusal | None:
    """What nginx refuses after a request head parsed: missing or duplicate ``Host`` on
    HTTP/1.1, ``TRACE``; CONNECT never reaches here (the parser treats it as an upgrade)."""
    hosts = head.hosts if head.index is not None else \
        sum(1 for k, _ in head.headers if k.lower() == b"host")
    if hosts > 1:
        return Refusal(400, "Bad Request")  # nginx: "client sent duplicate host header"
    if not hosts and head.version == "1.1":
        return Refusal(400, "Bad Request")  # nginx: "client sent HTTP/1.1 request without Host"
    if head.method == "TRACE":
        return Refusal(405, "Method Not Allowed")  # nginx answers TRACE with 405
    return None


def split_target(target: bytes) -> tuple[bytes | None, bytes, bytes]:
    """``(authority or None, path, query)`` of a request target; the absolute form
    (``http://host/p?q``) names its host, which wins over the ``Host`` header (RFC 9112)."""
    authority = None
    if not target.startswith(b"/"):
        scheme, sep, rest = target.partition(b"://")
        if sep and scheme.lower() in (b"http", b"https"):
            authority, slash, rest = rest.partition(b"/")
            target = slash + rest or b"/"
    path, _, query = target.partition(b"?")
    return authority, path, query


# `name: value` lines joined, not %-formatted one by one: formatting parses its template for
# every header, and heads are written twice per request
_LINE = b": ".join
_STATUS_LINES: dict[int, bytes] = {code: b"HTTP/1.1 %d %s" % (code, reason)
                                   for code, reason in REASONS.items()}


def response_head(status: int, headers: Headers) -> bytes:
    """A status line and header block; framing headers are the caller's to include."""
    line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown" % status
    if not headers:
        return line + b"\r\n\r\n"
    return b"\r\n".join([line, *map(_LINE, headers), b"\r\n"])


def request_head(method: str, target: bytes, headers: Headers) -> bytes:
    return head_start(method, target, headers) + b"\r\n"


def head_start(method: str, target: bytes, headers: Headers) -> bytes:
    """A request head without its closing empty line (``head_end`` adds more headers and
    closes it)."""
    line = b"%s %s HTTP/1.1" % (method.encode("ascii"), target)
    return b"\r\n".join([line, *map(_LINE, headers), b""])


def head_end(headers: Headers) -> bytes:
    """The last header lines of a head ``head_start`` began, and the empty line."""
    return b"\r\n".join([*map(_LINE, headers), b"\r\n"])


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def response_has_body(status: int, method: str) -> bool:
    """RFC 9112 §6.3: HEAD answers, 1xx, 204 and 304 have no body whatever they say."""
    return method != "HEAD" and status >= 200 and status not in (204, 304)


def is_websocket(head: RequestHead) -> bool:
    if not head.upgrade:
        return False
    upgrade = head.header(b"upgrade")
    return upgrade is not None and b"websocket" in upgrade.lower()


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """Header names a ``Connection`` header lists: hop-by-hop for this hop only."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)
