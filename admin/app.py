"""The Admin API application: routes from the registry, Kong's headers, body limits, and
who may call it (``admin.access``: Host and CORS; ``admin.auth``: credentials and roles)."""

from __future__ import annotations

import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin import routes as admin_routes
from admin.access import AccessPolicy, OriginGuard
from admin.audit import AuditMiddleware
from admin.auth import AuthMiddleware
from admin.config_api import DblessGuard
from admin.http import dumps, json_response
from admin.meta import NodeInfo
from gateway import version
from gateway.db.store import Store
from gateway.errors import PayloadTooLarge
from gateway.settings.listen import Listener
from gateway.text import is_digits

SERVER = f"ramparts/{version.__version__}"


class AdminMiddleware:
    """Kong's response headers, trailing-slash tolerance, the body-size limit and the
    request counters, around every Admin API request."""

    def __init__(self, app: ASGIApp, node: NodeInfo, max_body: int) -> None:
        self.app = app
        self.node = node
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        stats = self.node.stats
        stats.total_requests += 1
        stats.requests_active += 1
        try:
            if length is not None and is_digits(length) and int(length) > self.max_body:
                await self._too_large(send, started)
                return
            await self._run(scope, receive, send, started)
        finally:
            stats.requests_active -= 1

    async def _run(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        received = 0
        sent_start = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise PayloadTooLarge(self._too_large_message())
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal sent_start
            if message["type"] == "http.response.start":
                sent_start = True
                extra = [(b"server", SERVER.encode()),
                         (b"x-kong-admin-latency",
                          str(int((time.monotonic() - started) * 1000)).encode())]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except PayloadTooLarge:
            if not sent_start:
                await self._too_large(send, started)

    def _too_large_message(self) -> str:
        return f"Payload too large: the body exceeds {self.max_body} bytes (admin_max_body_size)"

    async def _too_large(self, send: Send, started: float) -> None:
        body = dumps({"message": self._too_large_message()})
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"server", SERVER.encode()),
            (b"x-kong-admin-latency", str(int((time.monotonic() - started) * 1000)).encode()),
        ]})
        await send({"type": "http.response.body", "body": body})


async def _not_found(request: Request, exc: Any) -> Response:
    return json_response(404, {"message": "Not found"})


def create_app(store: Store, node: NodeInfo, listener: Listener | None = None) -> ASGIApp:
    """The Admin API as served on ``listener`` (default: the first ``admin_listen`` entry):
    whether callers need credentials depends on the listener."""
    settings = node.settings
    if listener is None:
        listener = next(iter(settings.admin_listeners), Listener(host="127.0.0.1", port=8001))
    app = Starlette(routes=admin_routes.build(store, node),
                    exception_handlers={404: _not_found})
    app.state.store = store
    app.state.node = node
    inner: ASGIApp = DblessGuard(app, store) if settings.dbless else app
    audited = AuditMiddleware(
        OriginGuard(AuthMiddleware(inner, store, settings, listener),
                    AccessPolicy.from_settings(settings)),
        store, settings.audit_log_retention)
    return AdminMiddleware(audited, node, settings.admin_max_body_bytes)
