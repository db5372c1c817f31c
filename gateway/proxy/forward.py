"""The attempts of one exchange: balancer pick, a pooled upstream connection for the TLS
profile, the request streamed, the response relayed as it is parsed, retries and health
accounting decided by ``gateway.proxy.retry``'s table, and the WebSocket splice."""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from gateway.plugins import phases
from gateway.plugins.pdk import NO_CHANGES
from gateway.proxy import http1
from gateway.proxy.body import (
    BodyInterrupted,
    BodyMalformed,
    BodyTimeout,
    BodyTooLarge,
    ClientGone,
    RequestBody,
)
from gateway.proxy.connection import PENDING, Pending
from gateway.proxy.forwarding import downstream_headers, forwarded_headers, tail_headers
from gateway.proxy.retry import BodyState, cause, decide
from gateway.proxy.tunnel import Tunnel
from gateway.router.paths import upstream_uri
from gateway.upstream.balancer import Outcome, Peer
from gateway.upstream.hashing import hash_key
from gateway.upstream.origin import OriginConnection, UpstreamError
from gateway.upstream.origins import OriginKey
from gateway.upstream.target import Endpoint, endpoint, sni_for

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange

log = logging.getLogger("ramparts.proxy")

# the client's body failed in a way nginx answers (when no answer has begun): the log level,
# status and Kong's message
_BODY_ANSWERS: dict[type[ClientGone], tuple[int, int, str]] = {
    BodyTimeout: (logging.INFO, 408, "Request timeout"),
    BodyTooLarge: (logging.ERROR, 413, "Payload too large"),
    BodyMalformed: (logging.INFO, 400, "Bad request"),
}


class Forward:
    """Sends one routed exchange upstream, trying targets until one answers or the table
    says stop; the client gets the answer, Kong's error, or a cut connection.

    The first attempt of a request without a body, when a pooled connection to its target
    is idle, runs without a coroutine: the request is written at once and the response's
    completion calls back (``_answered``); whatever else an exchange needs (a dial, a body
    to stream, a retry) runs in ``_attempts``, which takes over where the first attempt
    left off."""

    __slots__ = ("balancer", "chunked", "ep", "ex", "forwarded", "hash_key", "origin", "peer",
                 "relay", "set_cookie", "since", "tail", "tried", "uri")

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex

    def run(self, pooled: bool = True) -> Coroutine[Any, Any, None] | Pending:
        """The request's upstream form, made once; then PENDING if the first attempt went
        out on a pooled connection (``pooled``: the caller can take PENDING), else the
        attempts' coroutine for the caller to await (returned, not awaited here: one frame
        less for every wake-up to pass through)."""
        ex = self.ex
        target, match, head, conn = ex.target, ex.match, ex.head, ex.conn
        route = match.route
        uri = match.uri  # the same for every request the router's cache answers
        if uri is None:
            uri = match.uri = upstream_uri(target.base_path, match.path, match.prefix,
                                           route.strip_path).encode("latin-1")
        # not `b"?" in target`: bytes' `in` first tries its operand as an integer, and the
        # TypeError is made (message formatted) and cleared on every call
        if head.target.find(b"?") >= 0:
            uri += b"?" + ex.query
        self.uri = uri
        stripped = match.prefix if route.strip_path and match.prefix not in ("", "/") else None
        kong = ex.kong
        policy = ex.proxy.headers
        changes = NO_CHANGES if kong is None else kong.changes or kong.upstream_changes()
        # the forwarded part is the connection memo's own list (never changed here); what
        # each request adds goes to its tail
        self.forwarded = forwarded_headers(head.headers, conn.hop, ex.host, ex.path, stripped,
                                           head.version, policy, changes.drop, conn.forwarded)
        tail = self.tail = tail_headers(ex.rid, policy, changes)
        body = ex.body
        if head.upgrade and http1.is_websocket(head):  # hop-by-hop, asked for on purpose
            tail += [(b"Connection", b"Upgrade"), (b"Upgrade", head.header(b"upgrade") or b"")]
        self.chunked = False
        if body is not None:
            length = head.header(b"content-length")
            if length is not None:
                tail.append((b"Content-Length", length))
            else:
                self.chunked = True
                tail.append((b"Transfer-Encoding", b"chunked"))
        balancer = self.balancer = ex.proxy.balancers.get(target.upstream.id) \
            if target.upstream else None
        self.hash_key = self.set_cookie = None
        if balancer is not None and balancer.upstream.algorithm == "consistent-hashing":
            self.hash_key, self.set_cookie = hash_key(balancer.upstream, self._hash_scope(),
                                                      match.path, match.captures)
        self.tried: list[str] = []
        if pooled and body is None and not head.upgrade:
            return self._start()
        return self._attempts(0, None)

    # ------------------------------------------------------------------ the pooled first attempt
    def _start(self) -> Coroutine[Any, Any, None] | Pending:
        ex, balancer = self.ex, self.balancer
        peer, since = None, 0.0
        if balancer is not None:
            peer = balancer.pick(self.hash_key, ())
            if peer is None:  # _attempts answers it (its pick finds none either)
                return self._attempts(0, None)
            self.tried.append(peer.address)
            since = balancer.started(peer)
        ep = endpoint(ex.target, peer)
        key, head = self._request_for(ep)
        origin = ex.proxy.origins.idle(key, ex.started)
        if origin is None:  # a dial: the attempt, with its peer, is the coroutine's
            return self._attempts(0, (peer, since, False))
        self.peer, self.since, self.ep, self.origin = peer, since, ep, origin
        relay = self.relay = _Relay(ex, self.set_cookie, ex.started)  # sent_at: set below
        relay.origin = origin
        ex.conn.source = origin  # a client that leaves stops this connection
        origin.begin_then(relay, ex.head.method, ex.target.timeout.sock_read or 60.0,
                          self._answered)
        origin.write(head)
        relay.sent_at = origin.request_sent()
        return PENDING

    def _answered(self, err: UpstreamError | None) -> None:
        """The pooled attempt is over (called by the origin connection as it ends): the
        exchange ends, or ``_attempts`` goes on."""
        ex = self.ex
        try:
            rest = self._after_pooled(err)
        except Exception:
            log.exception("unexpected error while proxying %s", ex.head.method)
            ex.conn.abort()
            rest = None
        try:
            ex.forwarded(rest)
        except Exception:  # a callback's exception would only reach the loop's log
            log.exception("unexpected error while proxying %s", ex.head.method)
            ex.conn.abort()
            ex.conn.exchange_over()

    def _after_pooled(self, err: UpstreamError | None) -> Coroutine[Any, Any, None] | None:
        ex, origin, relay, peer = self.ex, self.origin, self.relay, self.peer
        origins = ex.proxy.origins
        if err is None:
            if origin.upgraded is not None:  # switched protocols: the tunnel's, then closed
                return self._tunnel(origin, peer)
            origins.release(origin, True)
            if peer is not None:
                self._report(peer, "success", relay)
            return None
        origins.release(origin, False)
        if self._stale(err, origin):  # the same attempt, on a new connection
            return self._attempts(0, (peer, self.since, True))
        outcome, over = self._failed(err, relay, self.ep, last=ex.target.attempts == 1)
        self._report(peer, outcome, relay)
        return None if over else self._attempts(1, None)

    async def _tunnel(self, origin: OriginConnection, peer: Peer | None) -> None:
        try:
            await self._splice(origin)
        finally:
            self.ex.proxy.origins.release(origin, False)
            self._report(peer, "success", self.relay)

    def _report(self, peer: Peer | None, outcome: Outcome, relay: _Relay) -> None:
        if self.balancer is not None and peer is not None:
            self.balancer.finished(peer, self.since, outcome, relay.status)

    def _stale(self, err: UpstreamError, origin: OriginConnection) -> bool:
        """A pooled connection the upstream had closed as idle (the close crossed our
        request) is not the target's failure: a fresh one gets one more go."""
        return err.kind == "closed" and not origin.received and \
            self._body_state() == "none" and not self.ex.conn.closed

    # ------------------------------------------------------------------ the general attempts
    async def _attempts(self, first: int, carried: tuple[Peer | None, float, bool] | None
                        ) -> None:
        """Targets tried until one answers or the table says stop; each try is reported
        to the balancer's health accounting. From attempt ``first``; ``carried``: the peer
        (and its start) an attempt begun by ``_start`` had picked, and whether it needs a
        new connection."""
        ex, balancer, tried = self.ex, self.balancer, self.tried
        for attempt in range(first, ex.target.attempts):
            fresh = False
            if carried is not None:
                (peer, since, fresh), carried = carried, None
            else:
                peer = None
                if balancer is not None:
                    peer = balancer.pick(self.hash_key, tried)
                    if peer is None:
                        ex.conn.reply(ex.error(503, "failure to get a peer from the "
                                               "ring-balancer"), ex.head)
                        return
                    tried.append(peer.address)
                since = balancer.started(peer) if balancer and peer else 0.0
            self.since = since
            ep = endpoint(ex.target, peer)
            outcome: Outcome = "tcp_failure"
            relay = _Relay(ex, self.set_cookie, time.monotonic())
            try:
                await self._send(relay, ep, fresh)
                outcome = "success"
                return
            except UpstreamError as err:
                outcome, over = self._failed(err, relay, ep,
                                             last=attempt + 1 == ex.target.attempts)
                if over:
                    return
            except ClientGone as gone:
                outcome = "ignored"  # the client's fault, not the target's
                self._client_gone(gone)
                return
            finally:
                self._report(peer, outcome, relay)

    def _failed(self, err: UpstreamError, relay: _Relay, ep: Endpoint, last: bool
                ) -> tuple[Outcome, bool]:
        """An attempt failed: its outcome for the balancer, and whether the exchange is
        over (answered, cut, or the client left) rather than worth another target."""
        ex = self.ex
        if relay.status is not None:  # the target answered; the stream broke later
            self._broken_stream(ep, err)
            return "success", True
        if ex.conn.closed:  # the client left first: not the target's fault
            log.info("service %s: the client went away while waiting for %s",
                     ex.target.name, ep.origin)
            return "ignored", True
        if err.started:
            self._broken_stream(ep, err)
            return "tcp_failure", True
        decision = decide(err.kind, ex.head.method, self._body_state())
        text = cause(err.kind, ep.origin, err.detail)
        if decision.retry and not last:
            log.warning("service %s: %s; trying again", ex.target.name, text)
            return decision.outcome, False
        log.error("service %s: %s", ex.target.name, text)
        ex.conn.reply(ex.error(decision.status, decision.message), ex.head)
        return decision.outcome, True

    def _client_gone(self, gone: ClientGone) -> None:
        ex = self.ex
        if not self._body_failed(gone):
            log.info("service %s: the client went away while sending its body",
                     ex.target.name)
        elif not ex.conn.responding:
            _, status, message = _BODY_ANSWERS[type(gone)]
            ex.conn.reply(ex.error(status, message), ex.head)

    def _body_failed(self, gone: ClientGone) -> bool:
        """A body failure nginx answers (``_BODY_ANSWERS``), rather than a client that
        left: logged, and the connection closes after this exchange."""
        answer = _BODY_ANSWERS.get(type(gone))
        if answer is None:
            return False
        log.log(answer[0], "service %s: %s", self.ex.target.name, gone)
        self.ex.conn.keep_alive(False)
        return True

    def _request_for(self, ep: Endpoint) -> tuple[OriginKey, bytes]:
        """The pool an attempt to ``ep`` takes its connection from, and the request head."""
        ex = self.ex
        target = ex.target
        host_header, sni = ep.host_header, ep.sni
        if ex.match.route.preserve_host and ex.host:
            client_host = ex.head.header(b"host")
            host_header = client_host.decode("latin-1") if client_host else ex.host
            sni = sni_for(ex.host) if target.scheme == "https" else None
        key = target.direct_key
        if key is None or ep is not target.direct or sni != ep.sni:
            key = OriginKey(target.pool, ep.host, ep.port, sni)
        # a keep-alive client's requests differ in their tail only: the rest is the memo's
        start = ex.conn.forwarded.head(ex.head.method, self.uri, host_header.encode("latin-1"),
                                       self.forwarded)
        return key, start + http1.head_end(self.tail)

    async def _send(self, relay: _Relay, ep: Endpoint, fresh: bool) -> None:
        ex = self.ex
        key, head = self._request_for(ep)
        timeout = ex.target.timeout
        origins = ex.proxy.origins
        while True:
            origin = None if fresh else origins.idle(key)  # the common case needs no await
            reused = origin is not None
            if origin is None:
                origin = await origins.dial(key, timeout.sock_connect or 60.0)
            relay.origin = origin
            ex.conn.source = origin  # a client that leaves stops this connection
            finished = origin.begin(relay, ex.head.method, timeout.sock_read or 60.0)
            complete = sent = False
            try:
                origin.write(head)
                sent = ex.body is None or await self._forward_body(origin)
                relay.sent_at = origin.request_sent()  # one clock read for both
                await finished
                # an upstream that answered before the whole body came still expects the
                # rest: the next request on that connection would be read as body
                complete = sent
                if origin.upgraded is not None:
                    complete = False  # the connection is the tunnel's now, then closed
                    await self._splice(origin)
                return
            except UpstreamError as err:
                if not (reused and self._stale(err, origin)):
                    raise
                fresh = True
            finally:
                if not finished.done():
                    finished.cancel()
                origins.release(origin, complete)

    async def _forward_body(self, origin: OriginConnection) -> bool:
        """The client's body to the upstream; True if all of it went. A body that fails as
        the client sends it (``_BODY_ANSWERS``) once the upstream's answer began leaves that
        answer to be relayed whole, and the connection closes after it."""
        ex = self.ex
        assert ex.body is not None
        try:
            return await _send_body(origin, ex.body, self.chunked, ex.target.write_timeout)
        except ClientGone as gone:
            if not ex.conn.responding or not self._body_failed(gone):
                raise  # _client_gone answers it, or the client left
            return False

    async def _splice(self, origin: OriginConnection) -> None:
        """The upstream switched protocols (WebSocket): bytes both ways until one side
        closes."""
        assert origin.upgraded is not None
        tunnel = Tunnel(self.ex.conn, origin)
        self.ex.conn.tunnel = origin.tunnel = tunnel
        await tunnel.run(self.ex.conn.start_tunnel(), origin.upgraded)

    def _broken_stream(self, ep: Endpoint, err: UpstreamError) -> None:
        if self.ex.conn.closed:
            log.info("service %s: the client went away during the response from %s",
                     self.ex.target.name, ep.origin)
        else:
            log.error("service %s: %s failed while streaming the response: %s",
                      self.ex.target.name, ep.origin, err.detail)
        self.ex.conn.abort()

    def _body_state(self) -> BodyState:
        if self.ex.body is None:
            return "none"
        return "sent" if self.ex.body.read_from else "unsent"

    def _hash_scope(self) -> dict[str, object]:
        return {"client": (self.ex.conn.client_ip, 0), "query_string": self.ex.query,
                "headers": [(n.lower(), v) for n, v in self.ex.head.headers]}


async def _send_body(origin: OriginConnection, body: RequestBody, chunked: bool,
                     write_timeout: float) -> bool:
    """The client's body, chunk by chunk, each written within ``write_timeout`` (Kong: the
    time allowed between two successive writes to the upstream); stops when the upstream
    answers early. True if the whole body was sent."""
    try:
        while not origin.responded and not origin.closed:
            data = await body.read()
            if not data:
                break
            origin.write(http1.chunk(data) if chunked else data)
            await origin.drain(write_timeout)
    except BodyInterrupted:
        return False
    if not body.taken or origin.closed:  # the answer came, or the upstream left, first
        return False
    if chunked:
        origin.write(http1.LAST_CHUNK)
    return True


class _Relay:
    """The upstream's response on its way to the client (called by the origin connection,
    synchronously, as it parses)."""

    __slots__ = ("ex", "held", "origin", "sent_at", "set_cookie", "status")

    def __init__(self, ex: Exchange, set_cookie: bytes | None, sent_at: float) -> None:
        self.ex = ex
        self.set_cookie = set_cookie
        self.status: int | None = None
        self.sent_at = sent_at  # until the request is sent: what an early answer is timed by
        self.origin: OriginConnection | None = None
        # with body filters: the read's last chunk, held until it is known whether the body
        # ends with it (then the filters see it once, with eof, as nginx's last buffer)
        self.held: bytes | None = None

    def head(self, status: int, headers: http1.Headers, length: int | None,
             has_body: bool) -> None:
        ex = self.ex
        # the moment the head was read (the origin reads the clock for its read timeout)
        now = self.origin.last_read if self.origin is not None else time.monotonic()
        self.status = status
        # by position (upstream_ms, proxy_ms, request_id, set_cookie, policy): keyword
        # arguments are matched by name per call
        out = downstream_headers(headers, int((now - self.sent_at) * 1000),
                                 int((self.sent_at - ex.started) * 1000), ex.rid,
                                 self.set_cookie, ex.proxy.headers)
        after, kong = ex.after, ex.kong
        if after is not None and kong is not None and after.header_filter:
            # Kong's rule: Content-Length stays, body filters or not, unless a header filter
            # clears it (then the body is chunked)
            # phases.header_filter's one call, made here: once per response with a filter
            status, out, length = kong.filter_head(after.header_filter, status, out, length,
                                                   "service")
        self.status = status
        conn = ex.conn
        if status == 101:
            upgrade = self.origin.upgrade if self.origin is not None else None
            out += [(b"connection", b"upgrade"), (b"upgrade", upgrade or b"websocket")]
        conn.start_response(status, out, length, has_body, ex.head.version)
        body = ex.body
        if body is not None and not body.finished:
            body.fail(BodyInterrupted())  # answered early: the rest is not forwarded
        conn.source = self.origin
        if conn.writing_paused and self.origin is not None:
            self.origin.pause_reading()

    def body(self, data: bytes) -> None:
        after, kong = self.ex.after, self.ex.kong
        if after is not None and kong is not None and after.body_filter:
            held, self.held = self.held, data
            if held is None:
                return
            data = phases.body_filter(after, kong, held, False)
        self.ex.conn.send(data)

    def flush(self) -> None:
        """The end of one read from the upstream: nothing is held across reads (a streamed
        body is not delayed)."""
        held = self.held
        if held is not None:
            self.held = None
            after, kong = self.ex.after, self.ex.kong
            assert after is not None and kong is not None
            self.ex.conn.send(phases.body_filter(after, kong, held, False))
        self.ex.conn.flush()

    def done(self) -> None:
        after, kong = self.ex.after, self.ex.kong
        if after is not None and kong is not None and after.body_filter:
            chunk, self.held = self.held or b"", None
            for call in after.body_filter:  # phases.body_filter's loop: once per response
                chunk = call(kong, chunk, True)
            self.ex.conn.send(chunk)
        self.ex.conn.end_response()

