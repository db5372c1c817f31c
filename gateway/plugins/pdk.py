"""What a plugin handler sees of a request: a small typed subset of Kong's PDK.

``kong.request`` reads the client's request, ``kong.client`` the client (address, TLS
certificate, the authenticated consumer), ``kong.service_request`` changes what goes
upstream, ``kong.response`` reads and changes the response head (header_filter) or ends the
request with an answer of its own (``exit``, from rewrite or access), and ``kong.ctx`` is
per-request storage shared by the plugins of that request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.plugins.directory import Directory

Headers = list[tuple[bytes, bytes]]


class Exit(Exception):  # Kong's name: kong.response.exit
    """Raised by ``kong.response.exit``: the request ends here with this answer."""

    def __init__(self, status: int, body: bytes, headers: Headers,
                 message: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers
        self.message = message  # set by ``kong.response.error``: the gateway's error body


def _find(headers: Headers, name: str) -> bytes | None:
    wanted = name.lower().encode("latin-1")
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


@dataclass(slots=True)
class RequestView:
    method: str
    scheme: str
    host: str
    port: int
    path: str          # normalised, without the query
    query: bytes
    headers: Headers   # as received

    def get_header(self, name: str) -> str | None:
        value = _find(self.headers, name)
        return value.decode("latin-1") if value is not None else None


@dataclass(slots=True)
class Consumer:
    id: str
    username: str | None = None
    custom_id: str | None = None


@dataclass(slots=True)
class ClientView:
    ip: str
    tls: Mapping[str, Any] | None   # the connection's TLS facts (gateway.tls.info)
    consumer: Consumer | None = None
    credential: Mapping[str, Any] | None = None

    def get_client_certificate(self) -> str | None:
        """The client's leaf certificate (PEM), if it sent one."""
        chain = (self.tls or {}).get("client_cert_chain") or []
        return str(chain[0]) if chain else None

    def authenticate(self, consumer: Consumer | None,
                     credential: Mapping[str, Any] | None) -> None:
        self.consumer = consumer
        self.credential = credential


@dataclass(slots=True)
class ServiceRequest:
    """Changes to the request the upstream receives (applied after access)."""

    set_headers: dict[bytes, bytes] = field(default_factory=dict)
    cleared: set[bytes] = field(default_factory=set)

    def set_header(self, name: str, value: str) -> None:
        key = name.lower().encode("latin-1")
        self.cleared.discard(key)
        self.set_headers[key] = value.encode("latin-1")

    def clear_header(self, name: str) -> None:
        key = name.lower().encode("latin-1")
        self.set_headers.pop(key, None)
        self.cleared.add(key)

    def changes(self) -> UpstreamChanges:
        if not self.set_headers and not self.cleared:
            return NO_CHANGES
        return UpstreamChanges(frozenset(self.cleared | self.set_headers.keys()),
                               tuple(self.set_headers.items()))


@dataclass(frozen=True, slots=True)
class UpstreamChanges:
    """What the plugins' ``service_request`` does to the upstream request, as the
    forwarding pass (``gateway.proxy.forwarding``: ``forwarded_headers`` leaves the names
    out, ``tail_headers`` adds the headers) applies it: lower-case
    names left out, headers added last. Made once per request (per connection, replayed)."""

    drop: frozenset[bytes]
    add: tuple[tuple[bytes, bytes], ...]


NO_CHANGES = UpstreamChanges(frozenset(), ())


@dataclass(slots=True)
class ResponseView:
    """The response head in header_filter (status and headers may be changed there).
    ``length`` is the body's ``Content-Length`` when the upstream sent one; it is kept even
    when body filters run (Kong, like ``body_filter_by_lua``, leaves it to the plugin that
    changes the body's size to clear it in header_filter)."""

    status: int = 0
    headers: Headers = field(default_factory=list)
    source: str = "service"  # "service" | "exit" | "error"
    length: int | None = None

    def get_header(self, name: str) -> str | None:
        if name.lower() == "content-length":
            return None if self.length is None else str(self.length)
        value = _find(self.headers, name)
        return value.decode("latin-1") if value is not None else None

    def set_header(self, name: str, value: str) -> None:
        key = name.lower().encode("latin-1")
        if key == b"content-length":
            self.length = int(value)
            return
        self.headers = [(n, v) for n, v in self.headers if n.lower() != key]
        self.headers.append((name.encode("latin-1"), value.encode("latin-1")))

    def add_header(self, name: str, value: str) -> None:
        self.headers.append((name.encode("latin-1"), value.encode("latin-1")))

    def clear_header(self, name: str) -> None:
        """Kong's ``kong.response.clear_header``; clearing ``Content-Length`` streams the
        body chunked (what a body filter that changes its size needs)."""
        key = name.lower().encode("latin-1")
        if key == b"content-length":
            self.length = None
            return
        self.headers = [(n, v) for n, v in self.headers if n.lower() != key]

    def exit(self, status: int, body: Mapping[str, Any] | str | bytes | None = None,
             headers: Mapping[str, str] | None = None) -> Exit:
        """Kong's ``kong.response.exit``: a table body is JSON. Use as ``raise
        kong.response.exit(403, {"message": "..."})``."""
        out: Headers = [(k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in (headers or {}).items()]
        if isinstance(body, Mapping):
            data = json.dumps(body).encode()
            if _find(out, "content-type") is None:
                out.append((b"content-type", b"application/json; charset=utf-8"))
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        return Exit(status, data, out)


    def error(self, status: int, message: str) -> Exit:
        """Kong's ``kong.response.error``: the gateway's error body for ``status``
        (``message`` and ``request_id``, JSON or text as the client accepts)."""
        return Exit(status, b"", [], message)


@dataclass(slots=True)
class Hello:
    """The certificate phase's view: the ClientHello's server name and the connection's
    ``ssl.SSLObject`` (for the libssl bridge). No request exists yet."""

    server_name: str | None
    ssl_object: Any


@dataclass(frozen=True, slots=True)
class Replay:
    """What a connection-scoped access phase (``Plan.replayable``) did to one request, kept
    on the connection: its next requests on the same chain and snapshot directory get the
    same consumer, credential, upstream header changes and ``ctx`` without running the
    plugins again. A connection answers its requests one after another, so the objects are
    shared, not copied (nothing changes them once access is over; ``ctx`` is copied)."""

    key: object  # the chain that ran, by identity
    db: Directory | None
    service_request: ServiceRequest | None
    changes: UpstreamChanges
    client: ClientView | None
    ctx: Mapping[str, Any] | None


class Source(Protocol):
    """Where a request's ``kong.request`` and ``kong.client`` come from (the exchange):
    read only when a plugin first asks for them."""

    def request_view(self) -> RequestView: ...
    def client_view(self) -> ClientView: ...


class Kong:
    """One request's view for every plugin that runs on it. ``request``, ``client``,
    ``service_request``, ``response`` and ``ctx`` are made on first use: a request whose
    plugins never touch them does not pay for them."""

    __slots__ = ("_client", "_ctx", "_head", "_request", "_response", "_service_request",
                 "_source", "_varies", "changes", "db", "protocol", "route_id", "service_id")

    # the exchange passes the first three by position: a call with keywords costs about
    # a third more (its arguments go through a dict)
    def __init__(self, protocol: str = "http", db: Directory | None = None,
                 source: Source | None = None, *, request: RequestView | None = None,
                 client: ClientView | None = None, route_id: str | None = None,
                 service_id: str | None = None) -> None:
        self._request = request
        self._client = client
        self._source = source  # required unless both views are given
        self.protocol = protocol
        self.route_id = route_id
        self.service_id = service_id
        self.db = db  # the snapshot's consumers, credentials and CA certificates
        self._service_request: ServiceRequest | None = None
        self._response: ResponseView | None = None
        self._head: tuple[int, Headers, str, int | None] | None = None  # see respond
        self._ctx: dict[str, Any] | None = None
        # the plugins' upstream changes; None once ``service_request`` is made, until
        # ``upstream_changes`` works them out (forwarding reads this, and calls that only then)
        self.changes: UpstreamChanges | None = NO_CHANGES
        self._varies = False

    @classmethod
    def replayed(cls, replay: Replay, protocol: str, source: Source, route_id: str,
                 service_id: str | None) -> Kong:
        """A keep-alive request that gets what its connection's first request got."""
        kong = cls(protocol, replay.db, source)  # by position: keywords cost a dict
        kong._client = replay.client
        kong.route_id, kong.service_id = route_id, service_id
        kong._service_request = replay.service_request  # never changed after access
        kong.changes = replay.changes
        if replay.ctx is not None:
            kong._ctx = dict(replay.ctx)
        return kong

    def recorded(self, key: object) -> Replay | None:
        """This request's access effect, for the connection's next requests (``key``: the
        chain that ran); None if a plugin said it varies."""
        if self._varies:
            return None
        return Replay(key, self.db, self._service_request, self.upstream_changes(),
                      self._client, self._ctx)

    def varies(self) -> None:
        """A connection-scoped plugin's answer that may not hold for the connection's next
        request (it came from a cache that ages): this request's effect is not replayed."""
        self._varies = True

    @property
    def request(self) -> RequestView:
        if self._request is None:
            assert self._source is not None
            self._request = self._source.request_view()
        return self._request

    @property
    def client(self) -> ClientView:
        if self._client is None:
            assert self._source is not None
            self._client = self._source.client_view()
        return self._client

    @property
    def service_request(self) -> ServiceRequest:
        if self._service_request is None:
            self._service_request = ServiceRequest()
            self.changes = None
        return self._service_request

    @property
    def response(self) -> ResponseView:
        if self._response is None:
            head = self._head
            self._response = ResponseView() if head is None else ResponseView(*head)
        return self._response

    def filter_head(self, filters: tuple[Callable[[Kong], None], ...], status: int,
                    headers: Headers, length: int | None, source: str
                    ) -> tuple[int, Headers, int | None]:
        """The response head through the header filters: status, headers and
        Content-Length as they left them. ``response`` shows the head, made from it only
        when a filter asks (a filter that never reads it costs no view)."""
        response = self._response
        if response is None:
            self._head = (status, headers, source, length)
        else:  # made earlier (in access): it shows this head from now on
            response.status, response.headers, response.source = status, headers, source
            response.length = length
        for call in filters:
            call(self)
        response = self._response
        if response is not None:
            return response.status, response.headers, response.length
        return status, headers, length

    @property
    def ctx(self) -> dict[str, Any]:
        if self._ctx is None:
            self._ctx = {}
        return self._ctx

    def ctx_value(self, key: str) -> Any:
        """``ctx[key]`` or None, without making ``ctx`` (the access log asks every request)."""
        return None if self._ctx is None else self._ctx.get(key)

    def upstream_changes(self) -> UpstreamChanges:
        """The plugins' ``service_request`` changes, for the forwarding pass (made once:
        access is over when the request goes upstream)."""
        changes = self.changes
        if changes is None:
            request = self._service_request
            changes = self.changes = NO_CHANGES if request is None else request.changes()
        return changes

    @property
    def consumer_id(self) -> str | None:
        client = self._client  # never made: nobody authenticated
        return client.consumer.id if client is not None and client.consumer else None
