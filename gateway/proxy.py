"""The proxy ASGI app: snapshot once -> health / mTLS gate -> route -> stream to the upstream.

Bodies stream in both directions (nothing is buffered whole). Errors are Kong's: 404 ``no
Route matched with those values``, 426/30x for HTTPS-only routes, 503 ``no Service found with
those values``, 502 ``An invalid response was received from the upstream server``, 504 ``The
upstream server is timing out``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from gateway import version
from gateway.errors_proxy import error_response, health_body
from gateway.router.paths import upstream_uri
from gateway.router.router import Match, Request
from gateway.snapshot import Holder
from gateway.tls.client import describe_failure, is_tls_failure
from gateway.upstream.balancer import Balancers, Outcome
from gateway.upstream.hashing import hash_key
from gateway.upstream.pools import Pools
from gateway.upstream.target import UpstreamTarget, endpoint, sni_for

log = logging.getLogger("ramparts.proxy")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade"})
# set by the gateway itself; client values are never forwarded. `Expect: 100-continue` is
# answered to the client by uvicorn (on the first receive); forwarded, it would make aiohttp
# hold the body until the upstream says 100, which not every upstream does (nginx drops it too)
OWN_REQUEST = frozenset({b"host", b"x-real-ip", b"x-forwarded-proto", b"x-forwarded-host",
                         b"x-forwarded-port", b"x-forwarded-path", b"x-forwarded-prefix",
                         b"x-forwarded-for", b"via", b"x-kong-request-id", b"expect"})
VIA = f"ramparts/{version.__version__}"
VIA_HEADER = f"1.1 {VIA}".encode()
BAD_GATEWAY = "An invalid response was received from the upstream server"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
NO_DEADLINE: contextlib.nullcontext[None] = contextlib.nullcontext()  # bodiless requests


class ProxyApp:
    """One instance per process; reads the holder once per request."""

    def __init__(self, holder: Holder, pools: Pools, balancers: Balancers | None = None, *,
                 health_path: str = "/__health", mtls_required: bool = False) -> None:
        self.holder = holder
        self.pools = pools
        self.balancers = balancers or Balancers()
        self.health_path = health_path
        self.mtls_required = mtls_required
        self.started = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # websockets are not proxied yet; uvicorn closes the connection
        started = time.monotonic()
        request_id = f"{random.getrandbits(128):032x}"  # an id, not a secret
        snapshot = self.holder.current
        if self.mtls_required:  # plain-HTTP listeners too: they carry no certificate at all
            refused = _client_cert_problem(scope)
            if refused is not None:
                await error_response(send, scope, 401, refused, request_id, started,
                                     plain_message=True)
                return
        if self.health_path and scope["path"] == self.health_path:
            await health_body(send, self.started)
            return
        req = _request_facts(scope, snapshot.router.uses_headers)
        match = snapshot.router.match(req)
        if match is None:
            await error_response(send, scope, 404, "no Route matched with those values",
                                 request_id, started)
            return
        blocked = snapshot.unrunnable.get(match.route.id) or snapshot.unrunnable.get("*")
        if blocked is not None:
            log.error("route %s: plugin '%s' is configured but this version cannot run it; "
                      "refusing the request rather than skipping the plugin",
                      match.route.name or match.route.id, blocked)
            await error_response(send, scope, 500, "An unexpected error occurred",
                                 request_id, started)
            return
        protocols = match.route.protocols
        if scope["scheme"] == "http" and not ({"http", "grpc", "ws"} & set(protocols)):
            await _https_redirect(send, scope, match, req, request_id, started)
            return
        target = snapshot.targets.get(match.service.id) if match.service else None
        if target is None:
            await error_response(send, scope, 503, "no Service found with those values",
                                 request_id, started)
            return
        await self._forward(scope, receive, send, req, match, target, request_id, started)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, req: Request,
                       match: Match, target: UpstreamTarget, request_id: str,
                       started: float) -> None:
        route = match.route
        path = upstream_uri(target.base_path, match.path, match.prefix, route.strip_path)
        query = scope["query_string"].decode("latin-1")
        base_headers = _upstream_headers(scope, req, match, request_id)
        body = _request_body(scope, receive, target.write_timeout)
        session = self.pools.session(target.pool)
        balancer = self.balancers.get(target.upstream.id) if target.upstream else None
        key, set_cookie = None, None
        if balancer is not None and balancer.upstream.algorithm == "consistent-hashing":
            key, set_cookie = hash_key(balancer.upstream, scope, match.path, match.captures)
        tried: list[str] = []
        sent_at = time.monotonic()
        for attempt in range(target.attempts):
            last = attempt + 1 == target.attempts
            peer = None
            if balancer is not None:
                peer = balancer.pick(key, tried)
                if peer is None:
                    await error_response(send, scope, 503, "failure to get a peer from the "
                                         "ring-balancer", request_id, started)
                    return
                tried.append(peer.address)
            ep = endpoint(target, peer)
            host_header, sni = ep.host_header, ep.sni
            if route.preserve_host and req.host:
                host_header = _client_host(scope) or req.host
                sni = sni_for(req.host) if target.scheme == "https" else None
            since = balancer.started(peer) if balancer and peer else 0.0
            outcome: Outcome = "tcp_failure"
            status_seen: int | None = None
            status = 502
            try:
                url = URL.build(scheme=target.scheme, host=ep.host, port=ep.port, path=path,
                                query_string=query, encoded=True)
                async with (NO_DEADLINE if body is None else asyncio.timeout(None)) as deadline:
                    if body is not None:
                        body.deadline = deadline
                    async with session.request(scope["method"], url, data=body,
                                               headers=[("Host", host_header), *base_headers],
                                               allow_redirects=False, timeout=target.timeout,
                                               server_hostname=sni) as resp:
                        if body is not None:
                            body.answered()
                        outcome, status_seen = "success", resp.status
                        # the client's disconnect is watched only once its body is all read
                        idle = receive if body is None or body.finished else None
                        await _relay(send, resp, idle, request_id, started, sent_at,
                                     set_cookie)
                return
            except aiohttp.ClientSSLError as exc:
                retry = False  # certificate problems do not go away by trying again
                cause = f"TLS to {ep.origin} failed: {describe_failure(exc)}"
            except aiohttp.ClientConnectorDNSError as exc:
                retry, status = False, 503  # Kong: 503 `name resolution failed`
                cause = f"name resolution failed for {ep.origin}: {exc}"
            except aiohttp.ClientConnectorError as exc:
                retry = True  # nothing reached the upstream: safe for any method
                cause = f"cannot connect to {ep.origin}: {exc}"
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if target.scheme == "https" and is_tls_failure(exc):
                    retry = False  # e.g. our client certificate refused after the handshake
                    cause = f"TLS to {ep.origin} failed: {describe_failure(exc)}"
                else:
                    # closed before answering: nginx retries these for idempotent requests
                    # whose body can be sent again (Kong's `proxy_next_upstream error timeout`)
                    retry = body is None and scope["method"] in IDEMPOTENT
                    cause = f"{ep.origin} failed: {exc}"
            except ResponseStarted as exc:
                log.error("service %s: %s failed while streaming the response: %s",
                          target.name, ep.origin, exc)
                raise  # uvicorn closes the client connection: the body is incomplete
            except ClientGone:
                log.info("service %s: the client went away during the response from %s",
                         target.name, ep.origin)
                return  # the upstream connection is closed, not pooled: it was mid-body
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                # a connect timeout, like a refusal, reached nothing: safe for any method
                outcome, retry = "timeout", isinstance(exc, aiohttp.ConnectionTimeoutError) \
                    or (body is None and scope["method"] in IDEMPOTENT)
                cause = f"{ep.origin} timed out " + (
                    "connecting (TLS handshake included)"
                    if isinstance(exc, aiohttp.ConnectionTimeoutError)
                    else "sending the request (write_timeout)"
                    if body is not None and body.timed_out()
                    else "waiting for the response")
            except (aiohttp.ClientError, ConnectionError) as exc:
                retry, cause = False, f"{ep.origin} failed: {exc}"
            except ValueError as exc:  # a URL aiohttp refuses: nothing was sent
                retry, cause = False, f"cannot build a request to {ep.origin}: {exc}"
            finally:
                if body is not None and body.client_gone:
                    outcome = "ignored"  # the client's fault, not the target's
                if balancer is not None and peer is not None:
                    balancer.finished(peer, since, outcome, status_seen)
            if body is not None and body.client_gone:
                log.info("service %s: the client went away while sending its body",
                         target.name)
                return
            if retry and not last:
                log.warning("service %s: %s; trying again", target.name, cause)
                continue
            log.error("service %s: %s", target.name, cause)
            if outcome == "timeout":
                await error_response(send, scope, 504, "The upstream server is timing out",
                                     request_id, started)
            elif status == 503:
                await error_response(send, scope, 503, "name resolution failed", request_id,
                                     started)
            else:
                await error_response(send, scope, 502, BAD_GATEWAY, request_id, started)
            return


class ResponseStarted(Exception):
    """The upstream failed after the response started; the client connection must be cut."""


class ClientGone(Exception):
    """The client disconnected while the response streamed; the upstream read stops."""


async def _relay(send: Send, resp: aiohttp.ClientResponse, idle: Receive | None,
                 request_id: str, started: float, sent_at: float,
                 set_cookie: bytes | None = None) -> None:
    """The head goes out as soon as it is here (as nginx does: a stream's first event may
    be minutes away); when the body is already complete too, the corked transport sends
    both as one write."""
    now = time.monotonic()
    headers = [(k, v) for k, v in resp.raw_headers if k.lower() not in HOP_BY_HOP]
    if set_cookie is not None:
        headers.append((b"set-cookie", set_cookie))
    headers.append((b"via", VIA_HEADER))
    headers.append((b"x-kong-upstream-latency", b"%d" % ((now - sent_at) * 1000)))
    headers.append((b"x-kong-proxy-latency", b"%d" % ((sent_at - started) * 1000)))
    headers.append((b"x-kong-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    content = resp.content
    try:
        first = await content.readany()
        if content.at_eof():
            await send({"type": "http.response.body", "body": first})
            return
        await send({"type": "http.response.body", "body": first, "more_body": True})
        await _stream(send, content, idle)
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        raise ResponseStarted(str(exc)) from exc


async def _disconnected(receive: Receive) -> None:
    # a bodiless request's end-of-body event may still be unread: skip to the disconnect
    while (await receive())["type"] != "http.disconnect":
        pass


async def _stream(send: Send, content: aiohttp.StreamReader, idle: Receive | None) -> None:
    """The rest of a body that is still arriving. uvicorn's ``send`` ignores a client that
    is gone, so without a watch an endless stream would be read from the upstream forever:
    ``receive()`` answers ``http.disconnect`` when the client leaves, and that cancels us."""
    task = asyncio.current_task()
    state = {"done": False, "gone": False}

    def on_disconnect(watch: asyncio.Future[Any]) -> None:
        if not state["done"] and not watch.cancelled() and watch.exception() is None \
                and task is not None:
            state["gone"] = True
            task.cancel()

    watch = asyncio.ensure_future(_disconnected(idle)) if idle is not None else None
    if watch is not None:
        watch.add_done_callback(on_disconnect)
    try:
        async for chunk in content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        state["done"] = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if state["gone"] and task is not None:
            task.uncancel()
            raise ClientGone() from None
        raise
    finally:
        state["done"] = True
        if watch is not None:
            watch.cancel()


class RequestBody:
    """The client's body, streamed to the upstream chunk by chunk, under the service's
    ``write_timeout`` (Kong: the time allowed between two successive writes to the upstream).

    aiohttp asks for the next chunk only once the previous one is written (its writer drains),
    so the deadline is armed when a chunk is handed over and disarmed when the next is asked
    for; time spent waiting for the client's bytes is not the upstream's fault."""

    __slots__ = ("_done", "_receive", "client_gone", "deadline", "write_timeout")

    def __init__(self, receive: Receive, write_timeout: float) -> None:
        self._receive = receive
        self._done = False
        self.client_gone = False
        self.write_timeout = write_timeout
        self.deadline: asyncio.Timeout | None = None

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        if self.deadline is not None:
            self.deadline.reschedule(None)  # the previous chunk is written
        while not self._done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ConnectionError("the client went away while sending the body")
            self._done = not message.get("more_body", False)
            chunk: bytes = message.get("body", b"")
            if chunk:
                if self.deadline is not None:
                    self.deadline.reschedule(asyncio.get_running_loop().time()
                                             + self.write_timeout)
                return chunk
        raise StopAsyncIteration

    @property
    def finished(self) -> bool:
        return self._done

    def answered(self) -> None:
        """The upstream answered: a write stalling now is no longer a write timeout."""
        if self.deadline is not None:
            self.deadline.reschedule(None)
            self.deadline = None

    def timed_out(self) -> bool:
        return self.deadline is not None and self.deadline.expired()


def _request_body(scope: Scope, receive: Receive, write_timeout: float) -> RequestBody | None:
    headers = dict(scope["headers"])
    if b"content-length" not in headers and b"transfer-encoding" not in headers:
        return None
    if headers.get(b"content-length") == b"0":
        return None
    return RequestBody(receive, write_timeout)


def _client_host(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return str(value.decode("latin-1"))
    return ""


def _request_facts(scope: Scope, with_headers: bool) -> Request:
    headers: dict[str, list[str]] = {}
    if with_headers:
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    host = _strip_port(_client_host(scope))
    raw = scope.get("raw_path") or scope["path"].encode()
    raw_path = raw.decode("latin-1").split("?", 1)[0]
    port = scope["server"][1] if scope.get("server") else 0
    tls = scope.get("extensions", {}).get("tls")
    return Request(method=scope["method"], host=host, port=port, raw_path=raw_path,
                   headers=headers, scheme=scope["scheme"],
                   sni=tls.get("server_name") if tls else None)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[:host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _text(value: bytes) -> str:
    """A header value as aiohttp wants it (str, which it encodes as UTF-8): UTF-8 bytes
    must round-trip unchanged, so they are decoded as UTF-8, not latin-1."""
    if value.isascii():
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")  # not UTF-8: the best aiohttp can carry


def _upstream_headers(scope: Scope, req: Request, match: Match, request_id: str
                      ) -> list[tuple[str, str]]:
    """Everything but ``Host`` (which depends on the target picked for each attempt)."""
    raw_headers = scope["headers"]
    connection_listed: set[bytes] = set()
    xff = ""
    via = ""
    for name, value in raw_headers:
        if name == b"connection":
            connection_listed.update(v.strip().lower().encode() for v in
                                     value.decode("latin-1").split(","))
        elif name == b"x-forwarded-for":
            xff = value.decode("latin-1") if not xff else f"{xff}, {value.decode('latin-1')}"
        elif name == b"via":
            via = value.decode("latin-1") if not via else f"{via}, {value.decode('latin-1')}"
    out = [(n.decode("latin-1"), _text(v)) for n, v in raw_headers
           if n not in HOP_BY_HOP and n not in OWN_REQUEST and n not in connection_listed]
    client = scope["client"][0] if scope.get("client") else ""
    out.append(("X-Forwarded-For", f"{xff}, {client}" if xff else client))
    out.append(("X-Forwarded-Proto", scope["scheme"]))
    out.append(("X-Forwarded-Host", req.host))
    out.append(("X-Forwarded-Port", str(req.port)))
    out.append(("X-Forwarded-Path", req.raw_path))
    if match.route.strip_path and match.prefix not in ("", "/"):
        out.append(("X-Forwarded-Prefix", match.prefix))
    out.append(("X-Real-IP", client))
    version_text = scope.get("http_version", "1.1")
    out.append(("Via", f"{via}, {version_text} {VIA}" if via else f"{version_text} {VIA}"))
    out.append(("X-Kong-Request-Id", request_id))
    return out


async def _https_redirect(send: Send, scope: Scope, match: Match, req: Request,
                          request_id: str, started: float) -> None:
    code = match.route.https_redirect_status_code
    if code == 426:
        await error_response(send, scope, 426, "Please use HTTPS protocol", request_id, started,
                             extra=[(b"connection", b"Upgrade"),
                                    (b"upgrade", b"TLS/1.2, HTTP/1.1")])
        return
    query = scope["query_string"]
    location = f"https://{req.host}{req.raw_path}" + ("?" + query.decode("latin-1")
                                                      if query else "")
    await send({"type": "http.response.start", "status": code, "headers": [
        (b"location", location.encode("latin-1")), (b"content-length", b"0"),
        (b"server", VIA.encode()), (b"x-kong-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": b""})


def _client_cert_problem(scope: Scope) -> str | None:
    tls = scope.get("extensions", {}).get("tls") or {}
    if not tls.get("client_cert_chain"):
        return "No required TLS certificate was sent"
    if tls.get("client_cert_error"):
        return "TLS certificate failed verification"
    return None


