"""The exchange: one request from its parsed head to the last byte of its response.

Snapshot once -> checks (malformed, mTLS, health path) -> route -> Kong's early answers
(404, 426/30x, 503, the fail-closed plugin guard) -> attempts (balancer pick, a pooled
connection for the TLS profile, the request streamed, the response relayed as it arrives),
with retries and health accounting decided by ``gateway.proxy.retry``'s table.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from gateway.errors_proxy import SERVER, Reply, error_reply, health_reply
from gateway.plugins import phases
from gateway.plugins.pdk import ClientView, Exit, Kong, RequestView
from gateway.proxy import http1
from gateway.proxy.access_log import Entry
from gateway.proxy.body import BodyInterrupted, BodyTimeout, ClientGone, RequestBody
from gateway.proxy.connection import Downstream
from gateway.proxy.forwarding import Forwarded, downstream_headers, upstream_headers
from gateway.proxy.retry import BodyState, cause, decide
from gateway.proxy.tunnel import Tunnel
from gateway.router.paths import normalize, upstream_uri
from gateway.router.router import Request
from gateway.snapshot import Holder
from gateway.upstream.balancer import Balancer, Balancers, Outcome, Peer
from gateway.upstream.hashing import hash_key
from gateway.upstream.origin import OriginConnection, UpstreamError
from gateway.upstream.origins import PoolKey
from gateway.upstream.pools import Pools
from gateway.upstream.target import Endpoint, endpoint, sni_for

log = logging.getLogger("ramparts.proxy")


class Proxy:
    """The handler of every downstream connection of the process."""

    def __init__(self, holder: Holder, pools: Pools, balancers: Balancers | None = None, *,
                 health_path: str = "/__health", mtls_required: bool = False,
                 access_log: Callable[[Entry], None] | None = None) -> None:
        self.holder = holder
        self.access_log = access_log
        self.pools = pools
        self.origins = pools.origins
        self.balancers = balancers or Balancers()
        self.health_path = health_path.encode()
        self.mtls_required = mtls_required
        self.started = time.monotonic()

    async def __call__(self, conn: Downstream, head: http1.RequestHead,
                       body: RequestBody | None) -> None:
        started = time.monotonic()
        request_id = f"{random.getrandbits(128):032x}"  # an id, not a secret
        ex = Exchange(self, conn, head, body, request_id, started)
        if self.access_log is None:
            await self._exchange(ex)
            return
        when = time.time()
        try:
            await self._exchange(ex)
        finally:
            self.access_log(Entry(
                client_ip=conn.client_ip, when=when, method=head.method,
                target=head.target.decode("latin-1"), version=head.version,
                status=conn.status_sent, sent=conn.bytes_sent,
                referer=_text(head.header(b"referer")),
                user_agent=_text(head.header(b"user-agent")), request_id=request_id,
                latency_ms=int((time.monotonic() - started) * 1000)))

    async def _exchange(self, ex: Exchange) -> None:
        reply = ex.check()
        if reply is None:
            try:
                reply = await ex.gate()
            except Exit as stop:
                reply = Reply(stop.status, [*stop.headers, (b"server", SERVER)], stop.body)
        if reply is not None:
            ex.answer(reply)
        else:
            await ex.forward()
        if ex.after is not None:
            ex.after.schedule_log()


class Exchange:
    __slots__ = ("after", "body", "chain", "conn", "head", "host", "kong", "match", "path",
                 "proxy", "query", "request_id", "route_request", "started", "target")

    def __init__(self, proxy: Proxy, conn: Downstream, head: http1.RequestHead,
                 body: RequestBody | None, request_id: str, started: float) -> None:
        self.proxy = proxy
        self.conn = conn
        self.head = head
        self.body = body
        self.request_id = request_id
        self.started = started
        self.kong: Kong | None = None
        self.after: phases.After | None = None

    def error(self, status: int, message: str, **kwargs: object) -> Reply:
        return error_reply(status, message, self.request_id, self.started,
                           accept=self.head.header(b"accept"), **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ before any upstream
    def check(self) -> Reply | None:
        """What is refused before any plugin runs: malformed heads, a missing client
        certificate where the listener requires one; the health path is answered."""
        head, conn, proxy = self.head, self.conn, self.proxy
        refused = http1.check_request(head)
        if refused is not None:
            conn.keep_alive(False)
            return self.error(refused.status, refused.message)
        if proxy.mtls_required:  # plain-HTTP listeners too: they carry no certificate at all
            problem = _client_cert_problem(conn)
            if problem is not None:
                return self.error(401, problem, plain_message=True)
        authority, path, self.query = http1.split_target(head.target)
        self.path = path.decode("latin-1")
        if proxy.health_path and path == proxy.health_path:
            return health_reply(proxy.started)
        raw_host = authority if authority is not None else head.header(b"host") or b""
        self.host = _strip_port(raw_host.decode("latin-1")).lower().rstrip(".")
        return None

    async def gate(self) -> Reply | None:
        """Global rewrite plugins, the router and Kong's early answers, then the route's
        access plugins; a ``kong.response.exit`` raises ``Exit``."""
        snapshot = self.proxy.holder.current
        chains = snapshot.plugins
        if chains.glob.has("rewrite"):
            await phases.run(chains.glob, "rewrite", self._kong())
        reply = self.route()
        chain = chains.glob if reply is not None else chains.for_route(self.match.route.id)
        if chain.phases:
            kong = self._kong()
            if reply is None:
                kong.route_id = self.match.route.id
                kong.service_id = self.match.service.id if self.match.service else None
                if chain.has("access"):
                    try:
                        await phases.run(chain, "access", kong)
                    finally:
                        self.after = phases.After(phases.picked(chain, kong), kong)
            if self.after is None:
                self.after = phases.After(phases.picked(chain, kong), kong)
        return reply

    def _kong(self) -> Kong:
        if self.kong is None:
            conn, head = self.conn, self.head
            self.kong = Kong(
                request=RequestView(method=head.method, scheme=conn.scheme, host=self.host,
                                    port=conn.server_port, path=normalize(self.path),
                                    query=self.query, headers=head.headers),
                client=ClientView(ip=conn.client_ip, tls=conn.tls), protocol=conn.scheme)
        return self.kong

    def answer(self, reply: Reply) -> None:
        """A response the gateway makes up, through the plugins' filters."""
        after = self.after
        if after is not None and (after.head or after.body):
            status, headers = after.header_filter(reply.status, list(reply.headers), "exit")
            reply = Reply(status, headers, after.body_filter(reply.body, True))
        self.conn.reply(reply, self.head)

    def route(self) -> Reply | None:
        """The router, and Kong's answers that need no upstream."""
        conn, head = self.conn, self.head
        snapshot = self.proxy.holder.current
        router = snapshot.router
        headers: dict[str, list[str]] = {}
        if router.uses_headers:
            for name, value in head.headers:
                headers.setdefault(name.decode("latin-1").lower(), []).append(
                    value.decode("latin-1"))
        # Kong's normalize(uri, true) before routing, regex routes included: a regex route
        # never sees `..` that a prefix route would not (the router adds nothing to this)
        self.route_request = Request(method=head.method, host=self.host, port=conn.server_port,
                                     raw_path=normalize(self.path), headers=headers,
                                     scheme=conn.scheme, sni=conn.sni)
        match = router.match(self.route_request)
        if match is None:
            return self.error(404, "no Route matched with those values")
        self.match = match
        route = match.route
        blocked = snapshot.unrunnable.get(route.id) or snapshot.unrunnable.get("*")
        if blocked is not None:
            log.error("route %s: plugin '%s' is configured but this version cannot run it; "
                      "refusing the request rather than skipping the plugin",
                      route.name or route.id, blocked)
            return self.error(500, "An unexpected error occurred")
        if conn.scheme == "http" and not ({"http", "grpc", "ws"} & set(route.protocols)):
            return self._https_redirect()
        target = snapshot.targets.get(match.service.id) if match.service else None
        if target is None:
            return self.error(503, "no Service found with those values")
        self.target = target
        return None

    def _https_redirect(self) -> Reply:
        code = self.match.route.https_redirect_status_code
        if code == 426:
            return self.error(426, "Please use HTTPS protocol",
                              extra=[(b"connection", b"Upgrade"),
                                     (b"upgrade", b"TLS/1.2, HTTP/1.1")])
        location = f"https://{self.host}{self.path}".encode("latin-1")
        if self.query:
            location += b"?" + self.query
        return Reply(code, [(b"location", location), (b"server", SERVER),
                            (b"x-kong-request-id", self.request_id.encode())], b"")

    # ------------------------------------------------------------------ attempts
    async def forward(self) -> None:
        target, match, head, conn = self.target, self.match, self.head, self.conn
        route = match.route
        path = upstream_uri(target.base_path, match.path, match.prefix, route.strip_path)
        uri = path.encode("latin-1")
        if b"?" in head.target:
            uri += b"?" + self.query
        stripped = match.prefix if route.strip_path and match.prefix not in ("", "/") else None
        base = upstream_headers(head.headers, Forwarded(
            client_ip=conn.client_ip, scheme=conn.scheme, host=self.host,
            port=conn.server_port, path=self.path, prefix=stripped, version=head.version,
            request_id=self.request_id))
        if self.kong is not None:
            base = self.kong.service_request.apply(base)
        if http1.is_websocket(head):  # hop-by-hop, but asked of the upstream on purpose
            base += [(b"Connection", b"Upgrade"), (b"Upgrade", head.header(b"upgrade") or b"")]
        chunked = False
        if self.body is not None:
            length = head.header(b"content-length")
            if length is not None:
                base.append((b"Content-Length", length))
            else:
                chunked = True
                base.append((b"Transfer-Encoding", b"chunked"))
        balancer = self.proxy.balancers.get(target.upstream.id) if target.upstream else None
        key, set_cookie = None, None
        if balancer is not None and balancer.upstream.algorithm == "consistent-hashing":
            key, set_cookie = hash_key(balancer.upstream, self._hash_scope(), match.path,
                                       match.captures)
        tried: list[str] = []
        for attempt in range(target.attempts):
            peer = None
            if balancer is not None:
                peer = balancer.pick(key, tried)
                if peer is None:
                    conn.reply(self.error(503, "failure to get a peer from the "
                                          "ring-balancer"), head)
                    return
                tried.append(peer.address)
            done = await self._attempt(balancer, peer, uri, base, chunked, set_cookie,
                                       last=attempt + 1 == target.attempts)
            if done:
                return

    async def _attempt(self, balancer: Balancer | None, peer: Peer | None, uri: bytes,
                       base: http1.Headers, chunked: bool, set_cookie: bytes | None,
                       last: bool) -> bool:
        """One try; True when the exchange is over (answered, failed for good, or the
        client left), False when the next target should be tried."""
        target, head = self.target, self.head
        ep = endpoint(target, peer)
        host_header, sni = ep.host_header, ep.sni
        if self.match.route.preserve_host and self.host:
            client_host = head.header(b"host")
            host_header = client_host.decode("latin-1") if client_host else self.host
            sni = sni_for(self.host) if target.scheme == "https" else None
        since = balancer.started(peer) if balancer and peer else 0.0
        outcome: Outcome = "tcp_failure"
        relay = _Relay(self, set_cookie)
        try:
            try:
                await self._send(relay, ep, sni, host_header, uri, base, chunked)
                outcome = "success"
                return True
            except UpstreamError as err:
                if relay.status is not None:
                    outcome = "success"  # the target answered; the stream broke later
                elif self.conn.closed:
                    outcome = "ignored"  # the client left first: not the target's fault
                    log.info("service %s: the client went away while waiting for %s",
                             target.name, ep.origin)
                    return True
                if err.started or relay.status is not None:
                    self._broken_stream(ep, err)
                    return True
                decision = decide(err.kind, head.method, self._body_state())
                outcome = decision.outcome
                text = cause(err.kind, ep.origin, err.detail)
                if decision.retry and not last:
                    log.warning("service %s: %s; trying again", target.name, text)
                    return False
                log.error("service %s: %s", target.name, text)
                self.conn.reply(self.error(decision.status, decision.message), head)
                return True
            except ClientGone as gone:
                outcome = "ignored"  # the client's fault, not the target's
                if isinstance(gone, BodyTimeout):
                    log.info("service %s: %s", target.name, gone)
                    if not self.conn.responding:
                        self.conn.keep_alive(False)
                        self.conn.reply(self.error(408, "Request timeout"), head)
                    return True
                log.info("service %s: the client went away while sending its body",
                         target.name)
                return True
        finally:
            if balancer is not None and peer is not None:
                balancer.finished(peer, since, outcome, relay.status)

    async def _send(self, relay: _Relay, ep: Endpoint, sni: str | None, host_header: str,
                    uri: bytes, base: http1.Headers, chunked: bool) -> None:
        key = PoolKey(self.target.pool, ep.host, ep.port, sni)
        head = [(b"Host", host_header.encode("latin-1")), *base]
        try:
            await self._send_once(relay, key, head, uri, chunked)
        except _Stale:
            # a pooled connection the upstream had closed as idle (the close crossed our
            # request): not the target's failure; a fresh connection gets one more go
            await self._send_once(relay, key, head, uri, chunked, fresh=True)

    async def _send_once(self, relay: _Relay, key: PoolKey, head: http1.Headers, uri: bytes,
                         chunked: bool, fresh: bool = False) -> None:
        timeout = self.target.timeout
        origin, reused = await self.proxy.origins.acquire(key, timeout.sock_connect or 60.0,
                                                          fresh=fresh)
        relay.origin = origin
        self.conn.source = origin  # a client that leaves stops this connection
        finished = origin.begin(relay, self.head.method, timeout.sock_read or 60.0)
        complete = False
        try:
            origin.write(http1.request_head(self.head.method, uri, head))
            if self.body is not None:
                await _send_body(origin, self.body, chunked, self.target.write_timeout)
            origin.request_sent()
            relay.sent_at = time.monotonic()
            await finished
            complete = self.body is None or self.body.finished
            if origin.upgraded is not None:
                complete = False  # the connection is the tunnel's now, then closed
                await self._splice(origin)
        except UpstreamError as err:
            if reused and err.kind == "closed" and not origin.received and \
                    self._body_state() == "none" and not self.conn.closed:
                raise _Stale() from err
            raise
        finally:
            if not finished.done():
                finished.cancel()
            self.proxy.origins.release(origin, complete)

    async def _splice(self, origin: OriginConnection) -> None:
        """The upstream switched protocols (WebSocket): bytes both ways until one side
        closes."""
        assert origin.upgraded is not None
        tunnel = Tunnel(self.conn, origin)
        self.conn.tunnel = origin.tunnel = tunnel
        await tunnel.run(self.conn.start_tunnel(), origin.upgraded)

    def _broken_stream(self, ep: Endpoint, err: UpstreamError) -> None:
        if self.conn.closed:
            log.info("service %s: the client went away during the response from %s",
                     self.target.name, ep.origin)
        else:
            log.error("service %s: %s failed while streaming the response: %s",
                      self.target.name, ep.origin, err.detail)
        self.conn.abort()

    def _body_state(self) -> BodyState:
        if self.body is None:
            return "none"
        return "sent" if self.body.read_from else "unsent"

    def _hash_scope(self) -> dict[str, object]:
        return {"client": (self.conn.client_ip, 0), "query_string": self.query,
                "headers": [(n.lower(), v) for n, v in self.head.headers]}


async def _send_body(origin: OriginConnection, body: RequestBody, chunked: bool,
                     write_timeout: float) -> None:
    """The client's body, chunk by chunk, each written within ``write_timeout`` (Kong: the
    time allowed between two successive writes to the upstream); stops when the upstream
    answers early."""
    try:
        while not origin.responded and not origin.closed:
            data = await body.read()
            if not data:
                if chunked:
                    origin.write(http1.LAST_CHUNK)
                return
            origin.write(http1.chunk(data) if chunked else data)
            await origin.drain(write_timeout)
    except BodyInterrupted:
        return


class _Stale(Exception):
    """A reused connection closed before a byte of the answer."""


class _Relay:
    """The upstream's response on its way to the client (called by the origin connection,
    synchronously, as it parses)."""

    __slots__ = ("ex", "origin", "sent_at", "set_cookie", "status")

    def __init__(self, ex: Exchange, set_cookie: bytes | None) -> None:
        self.ex = ex
        self.set_cookie = set_cookie
        self.status: int | None = None
        self.sent_at = time.monotonic()
        self.origin: OriginConnection | None = None

    def head(self, status: int, headers: http1.Headers, length: int | None,
             has_body: bool) -> None:
        ex = self.ex
        now = time.monotonic()
        self.status = status
        out = downstream_headers(headers, upstream_ms=int((now - self.sent_at) * 1000),
                                 proxy_ms=int((self.sent_at - ex.started) * 1000),
                                 request_id=ex.request_id, set_cookie=self.set_cookie)
        after = ex.after
        if after is not None:
            if after.head:
                status, out = after.header_filter(status, out, "service")
            if after.body:
                length = None  # the filters may change the body's size
        self.status = status
        conn = ex.conn
        if status == 101:
            out += [(b"connection", b"upgrade"),
                    (b"upgrade", _find(headers, b"upgrade") or b"websocket")]
        conn.start_response(status, out, length, has_body, ex.head.version)
        body = ex.body
        if body is not None and not body.finished:
            body.fail(BodyInterrupted())  # answered early: the rest is not forwarded
        conn.source = self.origin
        if conn.writing_paused and self.origin is not None:
            self.origin.pause_reading()

    def body(self, data: bytes) -> None:
        after = self.ex.after
        if after is not None and after.body:
            data = after.body_filter(data, False)
        self.ex.conn.send(data)

    def flush(self) -> None:
        self.ex.conn.flush()

    def done(self) -> None:
        after = self.ex.after
        if after is not None and after.body:
            self.ex.conn.send(after.body_filter(b"", True))
        self.ex.conn.end_response()


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _find(headers: http1.Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _client_cert_problem(conn: Downstream) -> str | None:
    tls = conn.tls or {}
    if not tls.get("client_cert_chain"):
        return "No required TLS certificate was sent"
    if tls.get("client_cert_error"):
        return "TLS certificate failed verification"
    return None


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[:host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


