"""The proxy ASGI app: snapshot once -> health / mTLS gate -> route -> stream to the upstream.

Bodies stream in both directions (nothing is buffered whole). Errors are Kong's: 404 ``no
Route matched with those values``, 426/30x for HTTPS-only routes, 503 ``no Service found with
those values``, 502 ``An invalid response was received from the upstream server``, 504 ``The
upstream server is timing out``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from gateway import version
from gateway.errors_proxy import error_response, health_body
from gateway.router.paths import upstream_uri
from gateway.router.router import Match, Request
from gateway.schema.entities.services import ServiceEntity
from gateway.snapshot import Holder
from gateway.upstream.pools import PoolKey, Pools, TLSProfile

log = logging.getLogger("ramparts.proxy")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"proxy-connection", b"te", b"trailer",
                        b"transfer-encoding", b"upgrade"})
# set by the gateway itself; client values are never forwarded
OWN_REQUEST = frozenset({b"host", b"x-real-ip", b"x-forwarded-proto", b"x-forwarded-host",
                         b"x-forwarded-port", b"x-forwarded-path", b"x-forwarded-prefix",
                         b"x-forwarded-for", b"via", b"x-kong-request-id"})
RESPONSE_DROP = frozenset({"connection", "keep-alive", "proxy-authenticate",
                           "proxy-authorization", "proxy-connection", "te", "trailer",
                           "transfer-encoding", "upgrade"})
VIA = f"ramparts/{version.__version__}"
DEFAULT_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443, "ws": 80, "wss": 443}
REQUIRE_TLS = frozenset({"https", "grpcs", "wss"})
BAD_GATEWAY = "An invalid response was received from the upstream server"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class ProxyApp:
    """One instance per process; reads the holder once per request."""

    def __init__(self, holder: Holder, pools: Pools, *, health_path: str = "/__health",
                 mtls_required: bool = False) -> None:
        self.holder = holder
        self.pools = pools
        self.health_path = health_path
        self.mtls_required = mtls_required
        self.started = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not proxied yet; uvicorn closes the connection
        started = time.monotonic()
        request_id = os.urandom(16).hex()
        snapshot = self.holder.current
        if self.mtls_required and scope["scheme"] == "https":
            refused = _client_cert_problem(scope)
            if refused is not None:
                await error_response(send, scope, 401, refused, request_id, started,
                                     plain_message=True)
                return
        if self.health_path and scope["path"] == self.health_path:
            await health_body(send, self.started)
            return
        req = _request_facts(scope)
        match = snapshot.router.match(req)
        if match is None:
            await error_response(send, scope, 404, "no Route matched with those values",
                                 request_id, started)
            return
        protocols = match.route.protocols
        if scope["scheme"] == "http" and not ({"http", "grpc", "ws"} & set(protocols)):
            await _https_redirect(send, scope, match, req, request_id, started)
            return
        if match.service is None:
            await error_response(send, scope, 503, "no Service found with those values",
                                 request_id, started)
            return
        await self._forward(scope, receive, send, req, match, match.service, request_id,
                            started)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, req: Request,
                       match: Match, service: ServiceEntity, request_id: str,
                       started: float) -> None:
        path = upstream_uri(service.path, match.path, match.prefix, match.route.strip_path)
        query = scope["query_string"]
        target = path + ("?" + query.decode("latin-1") if query else "")
        scheme = "https" if service.protocol in REQUIRE_TLS else "http"
        host_header = req.host if match.route.preserve_host else _host_header(service, scheme)
        headers = _upstream_headers(scope, req, match, host_header, request_id)
        url = URL.build(scheme=scheme, host=service.host, port=service.port,
                        encoded=True).join(URL(target, encoded=True))
        key: PoolKey = TLSProfile() if scheme == "https" else None
        timeout = aiohttp.ClientTimeout(total=None,
                                        sock_connect=(service.connect_timeout or 60000) / 1000,
                                        sock_read=(service.read_timeout or 60000) / 1000)
        body = _request_body(scope, receive)
        session = self.pools.session(key)
        attempts = (service.retries or 0) + 1
        sent_at = time.monotonic()
        sni = _sni(host_header) if scheme == "https" else None
        name = service.name or service.id
        for attempt in range(attempts):
            try:
                async with session.request(scope["method"], url, headers=headers, data=body,
                                           allow_redirects=False, timeout=timeout,
                                           server_hostname=sni) as resp:
                    await _relay(send, resp, request_id, started, sent_at)
                return
            except aiohttp.ClientConnectorError as exc:
                if attempt + 1 < attempts:
                    continue  # nothing reached the upstream: safe for any method
                status, message = 502, BAD_GATEWAY
                log.error("service %s: cannot connect to %s: %s", name, url.origin(), exc)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # closed before answering: nginx retries these for idempotent requests
                # whose body can be sent again (Kong's `proxy_next_upstream error timeout`)
                if attempt + 1 < attempts and body is None and scope["method"] in IDEMPOTENT:
                    continue
                status, message = 502, BAD_GATEWAY
                log.error("service %s: %s failed: %s", name, url.origin(), exc)
            except ResponseStarted as exc:
                log.error("service %s: %s failed while streaming the response: %s", name,
                          url.origin(), exc)
                raise  # uvicorn closes the client connection: the body is incomplete
            except (TimeoutError, aiohttp.ServerTimeoutError):
                status, message = 504, "The upstream server is timing out"
                log.error("service %s: %s timed out", name, url.origin())
            except (aiohttp.ClientError, ConnectionError) as exc:
                status, message = 502, BAD_GATEWAY
                log.error("service %s: %s failed: %s", name, url.origin(), exc)
            await error_response(send, scope, status, message, request_id, started)
            return


class ResponseStarted(Exception):
    """The upstream failed after the response started; the client connection must be cut."""


async def _relay(send: Send, resp: aiohttp.ClientResponse, request_id: str, started: float,
                 sent_at: float) -> None:
    now = time.monotonic()
    headers = [(k, v) for k, v in resp.raw_headers
               if k.decode("latin-1").lower() not in RESPONSE_DROP]
    headers.append((b"via", f"1.1 {VIA}".encode()))
    headers.append((b"x-kong-upstream-latency", str(int((now - sent_at) * 1000)).encode()))
    headers.append((b"x-kong-proxy-latency", str(int((sent_at - started) * 1000)).encode()))
    headers.append((b"x-kong-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    try:
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        raise ResponseStarted(str(exc)) from exc
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _request_body(scope: Scope, receive: Receive) -> AsyncIterator[bytes] | None:
    headers = dict(scope["headers"])
    if b"content-length" not in headers and b"transfer-encoding" not in headers:
        return None
    if headers.get(b"content-length") == b"0":
        return None

    async def stream() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("the client went away while sending the body")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    return stream()


def _request_facts(scope: Scope) -> Request:
    headers: dict[str, list[str]] = {}
    host = ""
    for name, value in scope["headers"]:
        text = value.decode("latin-1")
        key = name.decode("latin-1")
        headers.setdefault(key, []).append(text)
        if key == "host" and not host:
            host = text
    host = _strip_port(host)
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


def _host_header(service: ServiceEntity, scheme: str) -> str:
    host = f"[{service.host}]" if ":" in service.host else service.host
    return host if service.port == DEFAULT_PORTS[scheme] else f"{host}:{service.port}"


def _sni(host_header: str) -> str | None:
    name = _strip_port(host_header).strip("[]")
    if not name or ":" in name or name.replace(".", "").isdigit():
        return None  # no SNI for IP literals
    return name


def _upstream_headers(scope: Scope, req: Request, match: Match, host_header: str,
                      request_id: str) -> list[tuple[str, str]]:
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
            via = value.decode("latin-1")
    out = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw_headers
           if n not in HOP_BY_HOP and n not in OWN_REQUEST and n not in connection_listed]
    client = scope["client"][0] if scope.get("client") else ""
    out.append(("Host", host_header))
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


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

