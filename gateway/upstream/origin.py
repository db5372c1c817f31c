"""One raw connection to an upstream: an ``asyncio.Protocol`` with an httptools response
parser, driven by the exchange one request at a time.

The response head and body go to a ``Relay`` as they are parsed (synchronously, no task hop);
the relay writes them to the client, and a client that cannot keep up pauses our reading.
``finished`` tells the exchange how the attempt ended: a result once the response is complete,
an ``UpstreamError`` whose ``kind`` the retry table knows when it failed. An exchange that
awaits nothing (a pooled first attempt) is told the same through a callback instead
(``begin_then``), called the moment the attempt ends.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from typing import Protocol, cast

import httptools

from gateway.proxy import http1
from gateway.proxy.forwarding import ResponseHeaders
from gateway.proxy.retry import Kind
from gateway.proxy.tunnel import Tunnel
from gateway.tls.client import describe_failure, is_tls_failure


class UpstreamError(Exception):
    """An attempt failed; ``started`` when the response head had already gone to the client
    (then nothing can be retried or answered: the client connection is cut)."""

    def __init__(self, kind: Kind, detail: str, started: bool = False) -> None:
        super().__init__(detail)
        self.kind: Kind = kind
        self.detail = detail
        self.started = started


class Relay(Protocol):
    """``head`` gets the end-to-end headers (``ResponseHeaders``); the framing is told."""

    def head(self, status: int, headers: http1.Headers, length: int | None,
             has_body: bool) -> None: ...
    def body(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def done(self) -> None: ...


class _HeadDone(Exception):
    """Raised from the parser's head callback for a HEAD answer: llhttp would wait for the
    body its Content-Length announces."""


class _TooBig(Exception):
    """nginx's words, for the log: the response head outgrew ``proxy_buffer_size``."""

    def __str__(self) -> str:
        return "upstream sent too big header"


# nginx's proxy_buffer_size on x86-64 (a page; Kong keeps nginx's default): the response head
# (status line and headers) must fit, or the answer is a 502
HEAD_MAX = 4096


class OriginConnection(asyncio.Protocol):
    def __init__(self, release: PoolHooks, head_max: int = HEAD_MAX) -> None:
        self.hooks = release
        self.head_max = head_max
        self._reading = b""  # the read being parsed (a head's size is read off it)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # protocols are made on the loop
        # the parser hands each header straight to the sorter (no call of ours in between)
        self._sorted = ResponseHeaders()
        self.on_header: Callable[[bytes, bytes], None] = self._sorted.add
        self.parser = httptools.HttpResponseParser(self)
        self.requests = 0
        self.received = 0  # bytes of the current exchange's response
        self.idle_since = 0.0  # set by the pool when it takes the connection back
        self.closed = False
        self.keep_alive = True
        self.finished: asyncio.Future[None] | None = None
        # begin_then's callback: told the attempt's end (None, or the error) instead
        self._on_done: Callable[[UpstreamError | None], None] | None = None
        self._relay: Relay | None = None
        self._method = "GET"
        self._status = 0
        self._interim = False
        self._started = False
        self._until_close = False  # a body without length or chunking ends with the connection
        self._fresh_parser = False
        self._read_timeout = 60.0
        # when the read timeout's clock last started (the request sent, a read, reading
        # resumed): on a read, when the bytes came (the relay's latency and the pool's idle
        # clock use it instead of reading the clock again)
        self.last_read = 0.0
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_active = False  # a response is awaited (the timer may outlive it)
        self.reading_paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.tunnel: Tunnel | None = None
        self.upgraded: bytes | None = None  # after a 101: the bytes behind its head
        self.upgrade: bytes | None = None  # the response's Upgrade header

    # ------------------------------------------------------------------ exchange API
    def begin(self, relay: Relay, method: str, read_timeout: float) -> asyncio.Future[None]:
        """An exchange starts: ``finished`` ends with it."""
        self.begin_then(relay, method, read_timeout, None)
        finished = self.finished = self.loop.create_future()
        return finished

    def begin_then(self, relay: Relay, method: str, read_timeout: float,
                   on_done: Callable[[UpstreamError | None], None] | None) -> None:
        """An exchange starts: ``on_done`` is called once when it ends (from the parser's
        callback or the connection's loss: no future and no loop pass in between)."""
        self.finished = None
        self._on_done = on_done
        self.requests += 1
        self.received = 0
        self._relay = relay
        self._method = method
        self._read_timeout = read_timeout
        self._started = False
        if self._fresh_parser:
            self.parser = httptools.HttpResponseParser(self)
            self._fresh_parser = False

    def write(self, data: bytes) -> None:
        """Dropped once the connection is closing: ``finished`` reports that failure."""
        transport = self.transport
        if transport is not None and not self.closed and not transport.is_closing():
            transport.write(data)

    async def drain(self, timeout: float) -> None:
        """Wait while the socket's send buffer is full, at most ``timeout`` seconds
        (the service's ``write_timeout``); returns early when the upstream answered."""
        if not self._write_paused or self.closed or self._started:
            return
        loop = asyncio.get_running_loop()
        self._drain = loop.create_future()
        timer = loop.call_later(timeout, self._write_timed_out)
        try:
            await self._drain
        finally:
            timer.cancel()
            self._drain = None

    def request_sent(self) -> float:
        """The read timeout runs from now, between two reads; returns now (monotonic)."""
        now = self.last_read = time.monotonic()
        self._read_active = True
        loop = self.loop
        timer = self._read_timer
        # the loop's clock and time.monotonic's are the same (CLOCK_MONOTONIC)
        if timer is not None and timer.when() > now + self._read_timeout:
            timer.cancel()  # left by a service with a longer read_timeout
            timer = None
        if timer is None:
            self._read_timer = loop.call_later(self._read_timeout, self._check_read)
        return now

    @property
    def responded(self) -> bool:
        return self._started

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        self._stop_read_timer()
        self.hooks.lost(self)
        if self.tunnel is not None:
            self.tunnel.lost(self)
            return
        self._wake_drain()
        if self._until_close and exc is None and self._awaited:
            self._complete()  # llhttp is never told of the EOF that ends such a body
            return
        if exc is not None and is_tls_failure(exc):
            self._fail(UpstreamError("tls", describe_failure(exc), self._started))
        else:
            text = f": {exc}" if exc else ""
            self._fail(UpstreamError("closed", f"the connection closed{text}", self._started))

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.to_client(data)
            return
        self.last_read = time.monotonic()
        self.received += len(data)
        self._reading = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = int(upgrade.args[0]) if upgrade.args else len(data)
            if self._status == 101:
                self.upgraded = bytes(data[offset:])
                self.keep_alive = False
                if self._awaited:
                    self._complete()
            else:
                self._broken("an upgrade the request did not ask for")
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadDone):
                self._fresh_parser = True
                self._complete()
            else:
                self._broken(f"invalid response: {exc.__context__ or exc}")
        except httptools.HttpParserError as exc:
            self._broken(f"invalid response: {exc}")
        else:
            # httptools holds a header line until it ends: a head still unfinished after
            # the limit's worth of bytes is refused now, not buffered without bound
            if not self._started and self.received > self.head_max and self._awaited:
                self._broken(f"invalid response: {_TooBig()}")
        self._reading = b""  # not held while the connection idles in its pool
        # a response still under way: what this read gave goes out now (a complete one was
        # flushed by its relay's done; a failed one is the exchange's to cut)
        relay = self._relay
        if relay is not None:
            relay.flush()

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.tunnel is not None:
            self.tunnel.pause(self)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()
        if self.tunnel is not None:
            self.tunnel.resume(self)

    # the downstream's back-pressure
    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self.reading_paused:
            self.reading_paused = False
            self.last_read = time.monotonic()  # the client's slowness is not the upstream's
            self.transport.resume_reading()

    def client_gone(self) -> None:
        """The client left while this connection served it: stop reading, never reuse."""
        self.abort()

    # ------------------------------------------------------------------ parser callbacks
    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        headers, raw_length, chunked, self.upgrade = self._sorted.take()
        if self.received > self.head_max and self._head_size() > self.head_max:
            raise _TooBig()
        if 100 <= status < 200 and status != 101:
            self._interim = True  # 100 Continue, 103 Early Hints: not relayed
            return
        self._status = status
        has_body = http1.response_has_body(status, self._method)
        length = None
        if (has_body or self._method == "HEAD") and raw_length is not None:
            length = int(raw_length)
        self._started = True
        self._until_close = has_body and length is None and not chunked
        if self._drain is not None:  # a body being sent: the answer ends its wait
            self._wake_drain()
        if self._relay is not None:
            self._relay.head(status, headers, length, has_body)
        if self._method == "HEAD":
            raise _HeadDone()

    def on_body(self, data: bytes) -> None:
        if self._relay is not None:
            self._relay.body(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self.parser.should_keep_alive():
            self.keep_alive = False
        self._complete()

    # ------------------------------------------------------------------ internals
    def _head_size(self) -> int:
        """The bytes of the response so far, up to the end of the head being completed
        (found in this read; read only when the whole response so far is over the limit)."""
        data = self._reading
        before = self.received - len(data)
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return before + end + 4
        end = data.find(b"\n\r\n")  # the blank line began in the previous read
        return before + (end + 3 if end >= 0 else 1)

    def _complete(self) -> None:
        self._until_close = False
        self._read_active = False  # _stop_read_timer's common case
        if self.closed:
            self._stop_read_timer()
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.done()
        on_done = self._on_done
        if on_done is not None:  # the common case, inlined (see _settle)
            self._on_done = None
            on_done(None)
            return
        self._settle(None)

    def _fail(self, error: UpstreamError) -> None:
        self._relay = None
        self._settle(error)

    @property
    def _awaited(self) -> bool:
        """An exchange waits for this connection's answer."""
        finished = self.finished
        return self._on_done is not None or (finished is not None and not finished.done())

    def _settle(self, error: UpstreamError | None) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(error)
            return
        finished = self.finished
        if finished is not None and not finished.done():
            if error is None:
                finished.set_result(None)
            else:
                finished.set_exception(error)

    def _broken(self, detail: str) -> None:
        self._fail(UpstreamError("bad_response", detail, self._started))
        self.abort()

    def _check_read(self) -> None:
        self._read_timer = None
        if not self._read_active or self.closed:
            return
        if self.reading_paused:  # the client's back-pressure is not an upstream timeout
            self.last_read = time.monotonic()
        waited = time.monotonic() - self.last_read
        if waited < self._read_timeout:
            self._read_timer = self.loop.call_later(
                self._read_timeout - waited, self._check_read)
            return
        self._fail(UpstreamError("read_timeout", "waiting for the response", self._started))
        self.abort()

    def _stop_read_timer(self) -> None:
        """Lazily: the pending timer finds nothing awaited and lapses (a pooled connection's
        next request reuses it instead of scheduling another)."""
        self._read_active = False
        if self.closed and self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _write_timed_out(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_exception(UpstreamError("write_timeout",
                                              "sending the request (write_timeout)"))

    def _wake_drain(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)


class PoolHooks(Protocol):
    def lost(self, conn: OriginConnection) -> None: ...


async def dial(hooks: PoolHooks, host: str, port: int, context: ssl.SSLContext | None,
               sni: str | None, timeout: float, head_max: int = HEAD_MAX
               ) -> OriginConnection:
    """A new connection (TCP, and TLS when ``context`` is given), or an ``UpstreamError``
    whose kind says what failed: the name, the connection, its timeout, or TLS."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            _, conn = await loop.create_connection(
                lambda: OriginConnection(hooks, head_max), host.strip("[]"), port, ssl=context,
                server_hostname=(sni or host.strip("[]")) if context is not None else None,
                ssl_handshake_timeout=timeout if context is not None else None)
    except socket.gaierror as exc:
        raise UpstreamError("dns", str(exc)) from exc
    except TimeoutError as exc:
        raise UpstreamError("connect_timeout", "connecting (TLS handshake included)") from exc
    except ssl.SSLError as exc:
        raise UpstreamError("tls", describe_failure(exc)) from exc
    except OSError as exc:
        if context is not None and is_tls_failure(exc):
            raise UpstreamError("tls", describe_failure(exc)) from exc
        raise UpstreamError("connect", str(exc)) from exc
    return conn
