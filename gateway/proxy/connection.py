"""The downstream connection: one ``asyncio.Protocol`` per client, httptools parsing.

Requests are handed to the exchange one at a time, in order: a pipelined request waits (its
bytes parsed, the socket no longer read) until the response before it is complete. Writes
made while relaying one upstream read are corked into one ``write`` (one TLS record).
The connection owns its timers: the header-read timeout closes a client that never finishes
a request head, the keep-alive timeout an idle one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import httptools

from gateway.errors_proxy import SERVER, Reply
from gateway.proxy import http1
from gateway.proxy.body import BodyMalformed, ClientGone, RequestBody
from gateway.proxy.forwarding import Hop, Memo
from gateway.proxy.linger import ALWAYS, OFF, ON, Lingering, linger
from gateway.proxy.tunnel import Tunnel
from gateway.stats import ServerStats
from gateway.tls.info import tls_info

if TYPE_CHECKING:
    from gateway.plugins.pdk import Replay

log = logging.getLogger("ramparts.proxy")

_NO_HOP = Hop("", "http", 0)
HIGH_WATER = 256 * 1024  # request body bytes buffered before the socket stops being read
LOW_WATER = 64 * 1024
# A client that just connected sends its first request within moments; a drain that closed
# such a connection as idle would fail a request the client had every right to send.
FIRST_REQUEST_GRACE = 1.0
_NO_HEAD, _HEAD_BEGUN, _HEAD_TIMED = 0, 1, 2  # where the parser is in a request head


@dataclass(frozen=True, slots=True)
class Limits:
    """nginx's names and defaults where nginx has them (seconds, bytes)."""

    client_header_timeout: float = 60.0
    keepalive_timeout: float = 60.0           # Kong's nginx_http_keepalive_timeout
    client_body_timeout: float = 60.0
    large_client_header_buffers: int = 8192   # one line (request line or header) at most
    client_header_buffer_total: int = 32768   # the whole head at most
    max_headers: int = 100                    # Kong's lua_max_req_headers
    worker_connections: int = 16384           # client connections held at once
    client_max_body_size: int = 0             # 0: no limit (Kong's default)
    send_timeout: float = 60.0                # a client that stops reading its answer
    lingering_close: str = ON                 # linger.py: off, on or always
    lingering_time: float = 30.0
    lingering_timeout: float = 5.0


class Source(Protocol):
    """Where a response body comes from (an upstream connection): stopped while the client
    cannot take more."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class Pending:
    """What a handler returns for an exchange it finishes from a callback: it calls
    ``Downstream.exchange_over`` (or ``continue_with``) when it is done."""


PENDING = Pending()
# A handler answers synchronously (None), returns a coroutine the connection runs as a task,
# or returns PENDING (see above): a keep-alive request answered from a pooled upstream
# connection costs no task wake-up at all.
Handler = Callable[["Downstream", http1.RequestHead, RequestBody | None],
                   Awaitable[None] | Pending | None]


_warned = [0.0]


def _too_many(limit: int) -> None:
    """nginx's "worker_connections are not enough", at most every 10 s."""
    now = time.monotonic()
    if now - _warned[0] >= 10:
        _warned[0] = now
        log.warning("%d client connections are open (nginx_events_worker_connections): "
                    "closing new ones until some end", limit)


# what a closed connection's ``parser`` is: no callbacks, never fed
_GONE_PARSER = httptools.HttpRequestParser(object())


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class Downstream(asyncio.Protocol):
    def __init__(self, handler: Handler, stats: ServerStats, limits: Limits,
                 live: set[Downstream]) -> None:
        self.handler = handler
        self.live = live
        self.stats = stats
        self.limits = limits
        # read for every header line
        self._line_max = limits.large_client_header_buffers
        self._head_max = limits.client_header_buffer_total
        self._count_max = limits.max_headers
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # protocols are made on the loop
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = ""
        self.server_port = 0
        self.ssl_object: ssl.SSLObject | None = None
        self.scheme = "http"  # "https" on a TLS connection (read several times per request)
        self.hop = _NO_HOP  # the forwarding headers' facts, encoded once
        self.last_host: tuple[bytes, str] = (b"", "")  # Host as sent -> as routed
        self.forwarded = Memo()  # the last forwarding pass (a keep-alive client repeats it)
        self.replay: Replay | None = None  # a connection-scoped access phase's effect
        self._tls: dict[str, Any] | None = None
        self._queue: deque[tuple[http1.RequestHead, RequestBody | None]] = deque()
        self._serving = False  # a request is queued or being answered
        self._dispatch = False  # a request came with this read: answered once it is parsed
        self._exchange: tuple[http1.RequestHead, RequestBody | None] | None = None
        # a coroutine exchange's task, held here: the loop keeps only a weak reference
        self._task: asyncio.Task[None] | None = None
        self._paused: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._send_timer: asyncio.TimerHandle | None = None  # output waits for the client
        # the request being parsed
        self._url = b""
        self._headers: http1.Headers = []
        self._index: dict[bytes, bytes] = {}
        self._hosts = 0
        self._head_size = 0  # the complete header lines' bytes
        self._head_read = 0  # the bytes of a head's later reads (_head_unfinished)
        self._parsing: RequestBody | None = None
        # the response being written
        self._out: list[bytes] = []
        self._chunked = False
        self._keep_alive = True
        self._last_response = False  # told to close after the response (drain): sticky
        self._responding = False
        self.source: Source | None = None
        self.status_sent = 0   # of the current response (for the access log)
        self.bytes_sent = 0
        self.writing_paused = False
        self.closed = False
        self.tunnel: Tunnel | None = None
        self._last: http1.RequestHead | None = None
        # between a request's first byte and its complete head: _HEAD_BEGUN, then
        # _HEAD_TIMED once the header timeout runs for it
        self._in_head = _NO_HEAD
        self._born = 0.0
        self._upgrade_tail = b""
        self._half_closed = False
        self._lingering: Lingering | None = None
        # an answered request's body whose rest is being read and dropped, until when
        self._discarded: RequestBody | None = None
        self._discard_until = 0.0
        self._refused = 0  # a malformed request's status, once the ones before it are answered
        self.current: RequestBody | None = None

    # ------------------------------------------------------------------ transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        if len(self.live) >= self.limits.worker_connections:
            _too_many(self.limits.worker_connections)
            self.closed = True  # never counted: connection_lost only closes
            self.transport.abort()
            return
        self.live.add(self)
        self.stats.connections_accepted += 1
        self.stats.connections_active += 1
        peer = self.transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else ""
        sock = self.transport.get_extra_info("sockname")
        self.server_port = int(sock[1]) if sock else 0
        self.ssl_object = self.transport.get_extra_info("ssl_object")
        self.scheme = "https" if self.ssl_object is not None else "http"
        self.hop = Hop(self.client_ip, self.scheme, self.server_port)
        self._born = self.loop.time()
        self._arm(self.limits.client_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        # the parser holds this protocol's bound methods: dropping it leaves no reference
        # cycle, so the connection (its SSL object, its buffers) is freed here and now by
        # its reference count instead of by the cyclic collector's next pass
        self.parser = _GONE_PARSER
        self._lingering = None  # it refers to this protocol: no cycle is left behind
        if self.closed and self not in self.live:
            return  # refused at connection_made
        self.closed = True
        self.live.discard(self)
        self.stats.connections_active -= 1
        self.stats.connections_handled += 1
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._untime_sending()
        gone = ClientGone("the client went away")
        for _, body in self._queue:
            if body is not None:
                body.fail(gone)
        self._queue.clear()
        if self.current is not None:
            self.current.fail(gone)
        # a body still being parsed refers to this protocol (its flow control)
        self.current = self._parsing = self._discarded = None
        if self.tunnel is not None:
            self.tunnel.lost(self)
            return
        source = self.source
        if source is not None and hasattr(source, "client_gone"):
            source.client_gone()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.to_origin(data)
            return
        body = self._parsing  # a body under way: what this read adds to it is counted
        received = body.received if body is not None else 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade(data, int(upgrade.args[0]) if upgrade.args else len(data))
        except _Refused as refused:
            self._refuse(refused.status)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._refuse(cause.status if isinstance(cause, _Refused) else 400)
        except httptools.HttpParserError:
            self._refuse(400)
        else:
            if self._in_head:  # the head is not whole yet
                self._head_unfinished(len(data))
            elif body is not None and body is self._parsing:
                self._body_framing(body.received - received, len(data))
            if self._discarded is not None:
                self._discarding()
        if self._dispatch:
            # answered from the loop's ready queue, not from here: the requests of every
            # connection read in one loop pass then go upstream together, and the upstream
            # wakes once for them (answering here cost ~15 % more CPU per request at 50
            # connections: more cross-process wake-ups; docs/benchmarks.md)
            self._dispatch = False
            self.loop.call_soon(self._run_next)

    def _head_unfinished(self, read: int) -> None:
        """A read ended inside a request head: the head's timeout runs, and its bytes are
        counted. httptools holds a header line (or name) until it ends, so a line that never
        ends would grow without bound if the limits were checked only in ``on_header``. The
        read in which the head began is not counted (part of it may be the message before),
        so the count never exceeds the head's true size: a head is held to the limits plus
        one read."""
        if self._in_head == _HEAD_BEGUN:
            self._in_head = _HEAD_TIMED
            self._head_read = 0
            if self._deadline is None or not self._queue:
                self._arm(self.limits.client_header_timeout)
            return
        self._held(read)

    def _body_framing(self, payload: int, read: int) -> None:
        """A read ended inside a body: reads that add nothing to it are chunk framing or
        trailers, which httptools holds a line at a time like a head's (trailers are not
        forwarded, as nginx does not): past a head's limits in a row, the client is cut
        off. ``_head_read`` counts them (no head is being read meanwhile)."""
        if payload:
            self._head_read = 0
            return
        self._held(read)

    def _held(self, read: int) -> None:
        """``read`` more bytes that httptools may be holding (a head's or trailers'): past a
        request line and every header line at their limits, refused (431; a request being
        answered has its connection cut). A head on_url and on_header accept is never
        refused here."""
        self._head_read += read
        if self._head_read > self._line_max + self._head_max:
            self._refuse(431)

    def _upgrade(self, data: bytes, offset: int) -> None:
        """The parser stopped after an upgrade request's head: a WebSocket handshake waits
        (unread) for the upstream's answer; any other upgrade is served as plain HTTP."""
        head = self._last
        if head is not None and http1.is_websocket(head):
            self._upgrade_tail = bytes(data[offset:])
            self._pause("upgrade")
            return
        if head is not None:
            head.upgrade = False
        if offset < len(data):
            self.data_received(data[offset:])

    def start_tunnel(self) -> bytes:
        """The upstream switched protocols: reading resumes for the tunnel; returns the
        bytes the client sent right behind its upgrade request."""
        tail, self._upgrade_tail = self._upgrade_tail, b""
        self._resume("upgrade")
        return tail

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return None
        # a client that half-closes after its request still gets the answer; one that stops
        # in the middle of a request has left
        self._half_closed = True
        return self._serving and self._parsing is None

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._time_sending()
        if self.source is not None:
            self.source.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._untime_sending()
        if self.source is not None:
            self.source.resume_reading()

    def _time_sending(self) -> None:
        """nginx's ``send_timeout``: output the client does not take within it (the client
        stopped reading) cuts the connection, so it holds no socket and no upstream
        connection for ever. Timed only while output waits: pause_writing, or a close
        whose last bytes are still buffered."""
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout,
                                                    self._send_timed_out)

    def _untime_sending(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_timed_out(self) -> None:
        self._send_timer = None
        log.info("client timed out while sending to client, client: %s", self.client_ip)
        self._out = []
        if self.transport is not None:
            self.transport.abort()  # closing or not: a close would wait for the client

    # ------------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        self._discarded = None  # the body before this message, if one was dropped, ended
        self._url = b""
        self._headers = []
        self._index = {}
        self._hosts = 0
        self._head_size = 0
        # timed only if the head does not arrive whole (data_received arms the timer)
        self._in_head = _HEAD_BEGUN

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._line_max:
            raise _Refused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        size = self._head_size = self._head_size + len(name) + len(value) + 4
        if size > self._line_max:  # only then can a line, or the whole head, be too long
            self._check_size(len(name) + len(value) + 4, size)
        lower = name.lower()
        self._index.setdefault(lower, value)
        if lower == b"host":
            self._hosts += 1

    def _check_size(self, line: int, head: int) -> None:
        if line > self._line_max or head > self._head_max:
            raise _Refused(431)

    def on_headers_complete(self) -> None:
        if len(self._headers) > self._count_max:  # counted once: the head's size bounds it
            raise _Refused(431)
        parser = self.parser
        keep_alive = parser.should_keep_alive()
        # HTTP/1.1 read off keep-alive where it can be (httptools' get_http_version is a
        # str.format, ~1 % of a request): llhttp keeps a connection without a Connection
        # header alive only on 1.1 (1.0 needs "keep-alive"; 1.1 is the one version it
        # accepts with a non-zero minor). Any other case asks the parser.
        version = "1.1" if keep_alive and b"connection" not in self._index else \
            parser.get_http_version()
        # by position (method, target, version, headers, keep_alive, upgrade, index, hosts):
        # a class called with keywords gets them in a dict, made and freed per request
        head = http1.RequestHead(parser.get_method().decode("ascii", "replace"), self._url,
                                 version, self._headers, keep_alive, parser.should_upgrade(),
                                 self._index, self._hosts)
        self._in_head = _NO_HEAD
        if head.method == "CONNECT":
            raise _Refused(405)  # nginx: not a proxy for tunnels
        self._last = head
        te = self._index.get(b"transfer-encoding")
        if te is not None and te.strip().lower() != b"chunked":
            raise _Refused(501)  # nginx: "client sent unknown transfer-encoding"
        body = None
        if head.has_body:
            expect = self._index.get(b"expect")
            length = self._index.get(b"content-length")  # digits: llhttp checked them
            limits = self.limits
            body = RequestBody(self, expect is not None and
                               expect.lower() == b"100-continue" and head.version == "1.1",
                               limits.client_body_timeout, limits.client_max_body_size,
                               int(length) if length is not None else None)
        self._parsing = body
        self._queue.append((head, body))
        self._deadline = None  # _disarm, inlined: once per request
        if not self._serving:  # answered once this read is parsed (see data_received)
            self._serving = self._dispatch = True
        else:  # pipelined: answers go in order, so parse no further for now
            self._pause("pipeline")

    def on_body(self, data: bytes) -> None:
        if self._parsing is not None:
            self._parsing.feed(data)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.finish()
            self._parsing = None

    # ------------------------------------------------------------------ running exchanges
    # Requests are answered one at a time, in order. A handler that answers synchronously, or
    # from a callback (PENDING), costs no task; a coroutine it returns runs as a task of its
    # own. Either way the end of an exchange starts the next queued one.
    def _run_next(self) -> None:
        while self._queue and not self.closed:
            head, body = self._queue.popleft()
            if body is not None and body is self._parsing:
                # a pipelined request whose body is still arriving: read on for it (a request
                # behind it pauses reading again as its head completes)
                self._resume("pipeline")
            # the exchange begins (inlined: once per request)
            self.current = body
            self._keep_alive = head.keep_alive and not self._last_response
            self._responding = False
            self.status_sent = self.bytes_sent = 0
            stats = self.stats
            stats.total_requests += 1
            stats.requests_active += 1
            try:
                outcome = self.handler(self, head, body)
            except Exception:
                log.exception("unexpected error while proxying %s", head.method)
                self.abort()
                outcome = None
            if outcome is PENDING:
                self._exchange = (head, body)
                return
            if outcome is not None:
                self._exchange = (head, body)
                self._task = self.loop.create_task(self._run(cast(Awaitable[None], outcome)))
                return
            if not self._over(head, body):
                return
        self._next_request()

    async def _run(self, exchange: Awaitable[None]) -> None:
        try:
            await exchange
        except Exception:
            log.exception("unexpected error while proxying %s",
                          self._exchange[0].method if self._exchange else "?")
            self.abort()
        self._task = None
        self.exchange_over()

    def continue_with(self, rest: Awaitable[None]) -> None:
        """A PENDING exchange goes on as a coroutine (a retry, a dial): run as a task."""
        self._task = self.loop.create_task(self._run(rest))

    def exchange_over(self) -> None:
        """The running exchange is over (its handler returned PENDING, or its task ended):
        the connection closes or takes the next request."""
        running, self._exchange = self._exchange, None
        if running is not None and self._over(running[0], running[1]):
            if self._queue:
                self._run_next()
            else:
                self._next_request()

    def _over(self, head: http1.RequestHead, body: RequestBody | None) -> bool:
        """An exchange ended: whether the connection takes another request."""
        self.stats.requests_active -= 1
        self.current = None
        self.source = None
        self._responding = False  # a malformed request after this one gets its 400
        if head.upgrade:  # switched protocols (and closed) or refused: not reused
            reusable = False
        elif body is not None and not body.complete and not self.closed:
            reusable = self._keep_alive and not self._half_closed
            if reusable:  # the rest is read and dropped before the next request (nginx)
                self._discard(body)
        else:
            reusable = self._keep_alive and not (self._half_closed and not self._queue)
        if not reusable:
            self._serving = False
            self._close_answered(body is not None and not body.complete)
        return reusable

    def _next_request(self) -> None:
        """Every request answered: read on (a pipelined request may be parsed right away,
        even from within ``resume_reading``), the keep-alive timeout runs."""
        self._serving = False
        if self.closed:
            return
        if self._refused:
            self._refuse(self._refused)
            return
        if self._paused:
            self._resume("pipeline")
        if self._discarded is not None:
            self._discarding()
        elif not self._queue and self._parsing is None and not self._serving:
            self._arm(self.limits.keepalive_timeout)

    # nginx's discarded request body: a request answered before its body was all read (a
    # plugin's 401, a 404, an upstream's early answer) keeps its keep-alive connection if
    # the rest of the body arrives in time; it is read and dropped, with the client silent
    # for at most ``lingering_timeout`` at a time and ``lingering_time`` in all, or the
    # connection closes. A body its client was never asked for (``Expect: 100-continue``
    # unanswered) may never come: that connection closes at once, saying so (start_response).
    def _discard(self, body: RequestBody) -> None:
        # what is buffered and what still comes is dropped
        body.fail(ClientGone("the request was answered before its body was read"))
        self._discarded = body
        self._discard_until = self.loop.time() + self.limits.lingering_time

    def _discarding(self) -> None:
        """The body being discarded ended (the connection takes its next request), or the
        client's silence is timed again."""
        if self._parsing is not self._discarded:  # what was read after it is being served
            self._discarded = None
            if not self._serving and not self._queue and not self._in_head:
                self._arm(self.limits.keepalive_timeout)
            return
        left = self._discard_until - self.loop.time()
        if left <= 0:
            self._discarded = None
            self.close()
            return
        self._arm(min(left, self.limits.lingering_timeout))

    # ------------------------------------------------------------------ flow control
    def body_buffered(self, size: int) -> None:
        if size > HIGH_WATER:
            self._pause("body")
        elif size < LOW_WATER:
            self._resume("body")

    def continue_needed(self) -> None:
        if self.transport is not None and not self.closed and not self.transport.is_closing():
            self.transport.write(http1.CONTINUE)

    def _pause(self, reason: str) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # One timer per connection, moved lazily: a request that re-arms the deadline costs no
    # timer churn; the timer, when it fires early, sleeps on to the current deadline.
    def _arm(self, seconds: float) -> None:
        loop = self.loop
        deadline = self._deadline = loop.time() + seconds
        timer = self._timer
        if timer is not None and timer.when() > deadline:
            timer.cancel()
            timer = None
        if timer is None:
            self._timer = loop.call_at(deadline, self._check_deadline)

    def _disarm(self) -> None:
        self._deadline = None

    def _check_deadline(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self.closed:
            return
        loop = self.loop
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_deadline)
            return
        self._deadline = None
        self._timed_out()

    def _timed_out(self) -> None:
        if not self._serving:  # waiting for a head (or idle): nginx closes without a word
            self.close()

    # ------------------------------------------------------------------ TLS facts
    @property
    def tls(self) -> dict[str, Any] | None:
        """The connection's TLS facts (client certificate included), computed once."""
        if self.ssl_object is None:
            return None
        if self._tls is None:
            self._tls = tls_info(self.ssl_object)
        return self._tls

    @property
    def sni(self) -> str | None:
        return getattr(self.ssl_object, "ramparts_sni", None) if self.ssl_object else None

    # ------------------------------------------------------------------ writing responses
    def start_response(self, status: int, headers: http1.Headers, length: int | None,
                       has_body: bool, version: str) -> None:
        """The head; ``length`` is the body's size when known, else it is chunked (HTTP/1.1)
        or delimited by closing the connection (HTTP/1.0)."""
        self._responding = True
        self._chunked = False
        self.status_sent = status
        body = self.current
        if body is not None and body.expect and not body.received and not body.complete:
            # a body never asked for (Expect: 100-continue unanswered) may never come: the
            # connection closes after this answer rather than wait for it, and says so
            self._keep_alive = False
        if status == 101:  # no body, no framing: the connection belongs to the tunnel
            self._out.append(http1.response_head(status, headers))
            return
        if length is not None:
            headers.append((b"content-length", b"%d" % length))
        elif has_body:
            if version == "1.1":
                self._chunked = True
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                self._keep_alive = False
        if not self._keep_alive and version == "1.1":
            headers.append((b"connection", b"close"))
        elif self._keep_alive and version == "1.0":
            headers.append((b"connection", b"keep-alive"))
        self._out.append(http1.response_head(status, headers))

    def send(self, data: bytes) -> None:
        if data:
            self.bytes_sent += len(data)
            self._out.append(http1.chunk(data) if self._chunked else data)

    def end_response(self) -> None:
        if self._chunked:
            self._out.append(http1.LAST_CHUNK)
        self.flush()

    def flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            transport = self.transport
            if transport is not None and not self.closed and not transport.is_closing():
                transport.write(out[0] if len(out) == 1 else b"".join(out))

    def reply(self, reply: Reply, head: http1.RequestHead) -> None:
        """A whole response the gateway made up."""
        body = reply.body if http1.response_has_body(reply.status, head.method) else b""
        headers = list(reply.headers)
        self.start_response(reply.status, headers, len(reply.body), False, head.version)
        self.send(body)
        self.end_response()

    @property
    def responding(self) -> bool:
        return self._responding

    @property
    def idle(self) -> bool:
        """Between requests: no head half read, nothing parsed, nothing running, and past
        the moment a new connection's first request is on its way (safe to close at
        shutdown; a connection that is not idle gets its answer with "Connection: close")."""
        if self._lingering is not None:
            return True  # answered and half-closed: nothing is lost by ending it
        if self._serving or self._queue or self._parsing is not None or self._in_head:
            return False
        return self._last is not None or self.loop.time() - self._born >= FIRST_REQUEST_GRACE

    def keep_alive(self, keep: bool) -> None:
        if not keep:
            self._keep_alive = False
            self._last_response = True

    def close(self) -> None:
        if self._lingering is not None:
            self._lingering.end()
            return
        self.flush()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size():  # a close waits until the client took it
                self._time_sending()

    def _close_answered(self, unread: bool) -> None:
        """The connection ends after an answer. ``unread``: the client may still be sending
        (the rest of a body, or of a request that was refused), and so may anything it
        pipelined: then the close lingers, as nginx's (linger.py)."""
        limits = self.limits
        mode = limits.lingering_close
        if mode == OFF or self._half_closed or self.closed or not (
                unread or mode == ALWAYS or self._queue or self._in_head or self._refused):
            self.close()
            return
        self.flush()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._lingering = linger(transport, limits.lingering_timeout, limits.lingering_time)
        # nothing more is read or written here; connection_lost comes when the TCP
        # connection ends (the lingering close times what is left, output included)
        self.closed = True
        self.parser = _GONE_PARSER
        self._disarm()
        self._untime_sending()

    def abort(self) -> None:
        """The response cannot be completed: the client must not take it for whole."""
        self._out = []
        self._keep_alive = False
        if self._lingering is not None:
            self._lingering.end(abort=True)
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _refuse_body(self, body: RequestBody, status: int) -> bool:
        """The malformed bytes are in ``body``; True if that settles the connection. Under
        its exchange, its reads fail: the exchange answers 400 (nginx: "client sent invalid
        chunked body"), or, if its answer began, that answer ends whole; the connection
        closes after it. A body being discarded cuts the connection, as nginx's. A queued
        request's body makes that request the one refused in its turn."""
        if body is self._discarded:
            self.abort()
            return True
        self._parsing = None
        if body is self.current:
            self.keep_alive(False)
            self._pause("refused")  # nothing more is read: the connection ends after
            body.fail(BodyMalformed("client sent invalid chunked body" if status == 400
                                    else "client sent too long chunked body trailers"))
            return True
        if self._queue and self._queue[-1][1] is body:
            self._queue.pop()
        body.fail(ClientGone("the request's body is malformed"))
        return False

    def _refuse(self, status: int) -> None:
        """A request that cannot be parsed: nginx's answer, then the connection closes. A
        bad request behind others (its head, or the body of one still queued) waits for
        their answers; a body that goes wrong under its exchange: ``_refuse_body``."""
        self._disarm()
        if self.closed:
            self.abort()
            return
        parsing = self._parsing
        if parsing is not None and self._refuse_body(parsing, status):
            return
        if self._serving:
            self._refused = status
            self._pause("refused")  # nothing after it is read: _next_request answers it
            return
        body = b"%d %s\n" % (status, http1.REASONS.get(status, b""))
        self._keep_alive = False
        self.start_response(status, [(b"server", SERVER), (b"content-type", b"text/plain")],
                            len(body), False, "1.1")
        self.send(body)
        self.end_response()
        self._close_answered(True)  # the rest of what it sent is unread
