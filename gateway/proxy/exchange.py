"""The exchange: one request from its parsed head to the last byte of its response.

Snapshot once -> checks (malformed, mTLS, health path) -> route -> Kong's early answers
(404, 426/30x, 503, the fail-closed plugin guard) and the plugins' rewrite and access phases
-> the attempts (``gateway.proxy.forward``) -> the log phase and the access log.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.errors_proxy import SERVER, Reply, error_reply, health_reply
from gateway.plugins import phases
from gateway.plugins.pdk import ClientView, Exit, Kong, RequestView
from gateway.plugins.runtime import Chain, Plan
from gateway.proxy import http1
from gateway.proxy.access_log import Entry
from gateway.proxy.body import RequestBody
from gateway.proxy.connection import Downstream, Pending
from gateway.proxy.forward import Forward
from gateway.proxy.forwarding import DEFAULT_POLICY, HeaderPolicy, own_reply_headers
from gateway.router.paths import normalize
from gateway.router.router import Request
from gateway.snapshot import Holder
from gateway.upstream.balancer import Balancers
from gateway.upstream.pools import Pools

log = logging.getLogger("ramparts.proxy")
# the plugins' gate: its answer, or the coroutine to await once a handler returned an awaitable
Gated = Reply | Coroutine[Any, Any, Reply | None] | None


class Proxy:
    """The handler of every downstream connection of the process."""

    def __init__(self, holder: Holder, pools: Pools, balancers: Balancers | None = None, *,
                 health_path: str = "/__health", mtls_required: bool = False,
                 access_log: Callable[[Entry], None] | None = None,
                 headers: HeaderPolicy = DEFAULT_POLICY) -> None:
        self.holder = holder
        self.headers = headers
        self.access_log = access_log
        self.pools = pools
        self.origins = pools.origins
        self.balancers = balancers or Balancers()
        self.health_path = health_path.encode()
        self.mtls_required = mtls_required
        self.started = time.monotonic()

    def __call__(self, conn: Downstream, head: http1.RequestHead, body: RequestBody | None
                 ) -> Coroutine[Any, Any, None] | Pending | None:
        """None once answered synchronously; PENDING while the first attempt runs on a pooled
        upstream connection (``Exchange.forwarded`` ends it); else a coroutine to await."""
        started = time.monotonic()
        # an id, not a secret; %-formatted: an f-string parses its format spec per call. Bytes:
        # it goes into two heads; the text is made only for an error body or the access log
        ex = Exchange(self, conn, head, body, b"%032x" % random.getrandbits(128), started)
        try:
            reply = ex.check()
            if reply is None:
                plugins = ex.snapshot.plugins
                if plugins.any:
                    try:  # without a global rewrite phase, straight to access (one frame less)
                        gated = ex.gate() if plugins.glob.has("rewrite") else ex.access()
                    except Exception as failure:
                        gated = _stopped(ex, failure)
                    # synchronous unless a handler returned an awaitable
                    if gated is not None and not isinstance(gated, Reply):
                        return self.finishing(ex, self._gated(ex, _later(ex, gated)))
                    reply = gated
                else:
                    reply = ex.route()
            if reply is not None:
                ex.answer(reply)
            else:
                attempts = Forward(ex).run()
                if isinstance(attempts, Pending):
                    return attempts
                return self.finishing(ex, attempts)
        except BaseException:
            self.finish(ex, False)
            raise
        self.finish(ex, True)
        return None

    @staticmethod
    async def _gated(ex: Exchange, gated: Coroutine[Any, Any, Reply | None]) -> None:
        """The rest of an exchange whose plugins returned an awaitable."""
        reply = await gated
        if reply is not None:
            ex.answer(reply)
            return
        attempts = Forward(ex).run(pooled=False)
        assert not isinstance(attempts, Pending)
        await attempts

    async def finishing(self, ex: Exchange, rest: Awaitable[None]) -> None:
        """``rest`` of the exchange, then ``finish``."""
        answered = False
        try:
            await rest
            answered = True
        finally:
            self.finish(ex, answered)

    def finish(self, ex: Exchange, answered: bool) -> None:
        """The log phase (after an answer) and the access log (always)."""
        try:
            if answered and ex.after is not None and ex.after.log and ex.kong is not None:
                phases.run_log(ex.after, ex.kong)
        finally:
            if self.access_log is not None:
                conn, head = ex.conn, ex.head
                # by position, in Entry's field order: a class called with keywords gets
                # them in a dict, made and freed per request
                self.access_log(Entry(
                    conn.client_ip, ex.logged_at, head.method,
                    head.target.decode("latin-1"), head.version, conn.status_sent,
                    conn.bytes_sent, _text(head.header(b"referer")),
                    _text(head.header(b"user-agent")), ex.request_id,
                    int((time.monotonic() - ex.started) * 1000), _client_verify(ex)))
            # Kong's source is the exchange: left linked, the two are a cycle that only the
            # garbage collector frees, a collection every few requests (a log task keeps
            # its Kong, and through it the exchange, for as long as it runs)
            ex.kong = ex.after = None


class Exchange:
    __slots__ = ("after", "body", "chain", "conn", "head", "host", "kong", "logged_at",
                 "match", "path", "proxy", "query", "rid", "snapshot", "started", "target")

    def __init__(self, proxy: Proxy, conn: Downstream, head: http1.RequestHead,
                 body: RequestBody | None, rid: bytes, started: float) -> None:
        self.proxy = proxy
        self.snapshot = proxy.holder.current  # read once per request
        self.conn = conn
        self.head = head
        self.body = body
        self.rid = rid  # the request id (X-Kong-Request-Id)
        self.started = started
        # the access log's wall-clock time of the request (read only when it is written)
        self.logged_at = time.time() if proxy.access_log is not None else 0.0
        self.kong: Kong | None = None
        self.after: Plan | None = None  # what runs after access (phases.after), with kong

    @property
    def request_id(self) -> str:
        return self.rid.decode("ascii")

    def forwarded(self, rest: Awaitable[None] | None) -> None:
        """A PENDING exchange's first attempt is over: the exchange ends, or goes on as
        ``rest`` (another attempt, in a task)."""
        if rest is not None:
            self.conn.continue_with(self.proxy.finishing(self, rest))
            return
        self.proxy.finish(self, True)
        self.conn.exchange_over()

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
        body = self.body
        if body is not None and body.too_large:  # nginx: before the body is read or asked for
            log.error("%s, client: %s", body.too_large, conn.client_ip)
            conn.keep_alive(False)
            return self.error(413, "Payload too large")
        if proxy.mtls_required:  # plain-HTTP listeners too: they carry no certificate at all
            problem = _client_cert_problem(conn)
            if problem is not None:
                return self.error(401, problem, plain_message=True)
        authority, path, self.query = http1.split_target(head.target)
        self.path = path.decode("latin-1")
        if proxy.health_path and path == proxy.health_path:
            return health_reply(proxy.started)
        raw_host = authority if authority is not None else head.header(b"host") or b""
        seen = conn.last_host  # a keep-alive client names the same host again and again
        if seen[0] != raw_host:
            seen = conn.last_host = (raw_host, _host(raw_host))
        self.host = seen[1]
        return None

    def gate(self) -> Gated:
        """Global rewrite plugins, the router and Kong's early answers, then the route's
        access plugins; a ``kong.response.exit`` raises ``Exit``. Synchronous while every
        handler is: the rest becomes a coroutine only once one returns an awaitable."""
        glob = self.snapshot.plugins.glob
        if "rewrite" in glob.phases:
            pending = phases.start(glob, "rewrite", self._kong())
            if pending is not None:
                return self._rewritten(pending)
        return self.access()

    async def _rewritten(self, pending: Awaitable[None]) -> Reply | None:
        await pending
        gated = self.access()
        return gated if gated is None or isinstance(gated, Reply) else await gated

    def access(self) -> Gated:
        """The router, Kong's early answers, then the route's access plugins."""
        reply = self.route()
        chains = self.snapshot.plugins
        if reply is not None:  # Kong's early answers: the global plugins' filters and log
            chain = chains.glob
            if chain.phases:
                answered = self._kong()
                self.after = phases.after(chain, answered, phases.plan_of(chain, answered))
            return reply
        match = self.match
        route_id = match.route.id
        chain = chains.by_route.get(route_id, chains.glob)  # for_route's line: per request
        if not chain.phases:
            return None
        service_id = match.service.id if match.service else None
        kong = self.kong
        if kong is None:  # no global rewrite plugin ran
            replay = self.conn.replay
            if replay is not None and replay.key is chain and \
                    replay.db is self.snapshot.directory:
                self.kong = Kong.replayed(replay, self.conn.scheme, self, route_id, service_id)
                return None  # nothing runs after a replayable access phase
            kong = self.kong = Kong(self.conn.scheme, self.snapshot.directory, self)
        kong.route_id, kong.service_id = route_id, service_id
        if chain.has("access"):
            return self._run_access(chain, kong)
        self.after = phases.after(chain, kong, phases.plan_of(chain, kong))
        return None

    def _run_access(self, chain: Chain, kong: Kong) -> Coroutine[Any, Any, None] | None:
        # phases.plan_of and phases.after, inlined for a chain with a plan (a plugin chain
        # costs each request a few frames of its own: these two run for every one)
        plans = chain.plans
        plan = plans.get(kong.protocol) if plans is not None else None
        pending = None
        try:
            if plan is not None:  # phases.planned's loop, inlined while no call awaits
                for call in plan.access:
                    pending = call(kong)
                    if pending is not None:
                        pending = phases.then(pending, plan.access, kong, call)
                        break
            else:
                pending = phases.start(chain, "access", kong)
        finally:  # an exit or a failure too: the filters and log still run
            if pending is None:
                self.after = phases.after(chain, kong) if plan is None else \
                    plan if plan.later else None
        if pending is not None:
            return self._accessed(chain, kong, pending)
        # the connection's next requests replay this one (nothing may run after access)
        if self.after is None and plan is not None and plan.replayable:
            self.conn.replay = kong.recorded(chain)
        return None

    async def _accessed(self, chain: Chain, kong: Kong, pending: Awaitable[None]) -> None:
        try:
            await pending
        finally:
            self.after = phases.after(chain, kong)

    def _kong(self) -> Kong:
        if self.kong is None:
            self.kong = Kong(self.conn.scheme, self.snapshot.directory, self)
        return self.kong

    def request_view(self) -> RequestView:
        """``kong.request``, made when a plugin first reads it."""
        conn, head = self.conn, self.head
        return RequestView(method=head.method, scheme=conn.scheme, host=self.host,
                           port=conn.server_port, path=normalize(self.path),
                           query=self.query, headers=head.headers)

    def client_view(self) -> ClientView:
        """``kong.client``, made when a plugin first reads it."""
        return ClientView(ip=self.conn.client_ip, tls=self.conn.tls)

    def answer(self, reply: Reply) -> None:
        """A response the gateway makes up, through the plugins' filters."""
        policy = self.proxy.headers
        if policy is not DEFAULT_POLICY:
            reply = Reply(reply.status, own_reply_headers(reply.headers, policy), reply.body)
        after, kong = self.after, self.kong
        if after is not None and kong is not None and (after.header_filter or
                                                       after.body_filter):
            status, headers, _ = phases.header_filter(after, kong, reply.status,
                                                      list(reply.headers), len(reply.body),
                                                      "exit")
            # the whole body is here: its length is what the filters return, whatever
            # Content-Length says
            reply = Reply(status, headers, phases.body_filter(after, kong, reply.body, True))
        self.conn.reply(reply, self.head)

    def route(self) -> Reply | None:
        """The router, and Kong's answers that need no upstream."""
        conn, head = self.conn, self.head
        snapshot = self.snapshot
        router = snapshot.router
        sni = conn.sni if router.uses_snis else None
        # Kong's normalize(uri, true) before routing, regex routes included: a regex route
        # never sees `..` that a prefix route would not (the router adds nothing to this)
        if router.uses_headers:
            headers: dict[str, list[str]] = {}
            for name, value in head.headers:
                headers.setdefault(name.decode("latin-1").lower(), []).append(
                    value.decode("latin-1"))
            # by position (method, host, port, raw_path, headers, scheme, sni): keywords
            # would be put in a dict per request
            match = router.match(Request(head.method, self.host, conn.server_port,
                                         normalize(self.path), headers, conn.scheme, sni))
        else:  # the path as received is the cache's key: normalised only on a miss
            match = router.find(head.method, self.host, conn.server_port, self.path,
                                conn.scheme, sni)
        if match is None:
            return self.error(404, "no Route matched with those values")
        self.match = match
        route = match.route
        unrunnable = snapshot.unrunnable  # nearly always empty
        blocked = unrunnable and (unrunnable.get(route.id) or unrunnable.get("*"))
        if blocked:
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
                            (b"x-kong-request-id", self.rid)], b"")

    # ------------------------------------------------------------------ attempts
def _stopped(ex: Exchange, failure: Exception) -> Reply:
    """A plugin ended the request: its ``kong.response.exit`` answer, or Kong's 500 for a
    plugin's bug (never an unprotected request)."""
    if isinstance(failure, Exit):
        if failure.message is not None:  # Kong's error body with the plugin's message
            return ex.error(failure.status, failure.message)
        return Reply(failure.status, [*failure.headers, (b"server", SERVER)], failure.body)
    log.error("a plugin failed on %s %s", ex.head.method, ex.path, exc_info=failure)
    return ex.error(500, "An unexpected error occurred")


async def _later(ex: Exchange, gated: Coroutine[Any, Any, Reply | None]) -> Reply | None:
    try:
        return await gated
    except Exception as failure:
        return _stopped(ex, failure)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _client_cert_problem(conn: Downstream) -> str | None:
    tls = conn.tls or {}
    if not tls.get("client_cert_chain"):
        return "No required TLS certificate was sent"
    if tls.get("client_cert_error"):
        return "TLS certificate failed verification"
    return None


def _client_verify(ex: Exchange) -> str | None:
    """nginx's ``$ssl_client_verify``, overridden by mtls-auth's verdict when it ran (Kong
    does the same to its serializer's ``request.tls.client_verify``)."""
    verdict = ex.kong.ctx_value("client_verify") if ex.kong is not None else None
    if verdict is not None:
        return str(verdict)
    tls = ex.conn.tls
    if tls is None:
        return None  # plain HTTP: nginx logs "-"
    if not tls.get("client_cert_chain"):
        return "NONE"
    error = tls.get("client_cert_error")
    return "SUCCESS" if error is None else f"FAILED:{error}"


def _host(raw: bytes) -> str:
    """The host routes match: without port, lower case, without a trailing dot."""
    return _strip_port(raw.decode("latin-1")).lower().rstrip(".")


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[:host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


