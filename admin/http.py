"""Small HTTP layer for the Admin API: JSON responses, per-path method dispatch, errors.

Every path is a ``Resource`` holding one handler per method. It answers OPTIONS (204 with
``Allow``), HEAD (the GET handler without a body) and 405 for other methods, as Kong does.
Typed errors are turned into Kong's bodies here and nowhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from admin.shapes import Shape
from gateway.errors import DbError, MethodNotAllowed, RampartsError, UnsupportedMediaType

log = logging.getLogger("ramparts.admin")

JSON_TYPE = "application/json; charset=utf-8"
Handler = Callable[[Request], Awaitable[Response]]


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None
                  ) -> Response:
    return Response(dumps(body), status_code=status, media_type=JSON_TYPE, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def error_response(exc: BaseException) -> Response:
    """The one place where errors become HTTP."""
    if isinstance(exc, UnsupportedMediaType):
        return Response(status_code=415)
    if isinstance(exc, DbError):
        return json_response(exc.status, exc.body())
    if isinstance(exc, RampartsError):
        return json_response(exc.status, exc.body(), exc.headers() or None)
    log.error("unexpected error in the Admin API", exc_info=exc)
    return json_response(500, {"message": "An unexpected error occurred"})


class Resource:
    """One path: handlers by method, with Kong's OPTIONS/HEAD/405 behaviour. ``shape`` says
    what the path serves, for the OpenAPI document."""

    def __init__(self, shape: Shape | None = None, /, **handlers: Handler) -> None:
        self.shape = shape or Shape()
        self.handlers = {method.upper(): fn for method, fn in handlers.items()}

    @property
    def allow(self) -> str:
        methods = set(self.handlers) | {"OPTIONS"}
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(sorted(methods))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # an ASGI app, so Starlette hands every method to us (a function route would 405)
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            wanted = request.headers.get("access-control-request-headers", "Content-Type")
            return Response(status_code=204, headers={
                "Allow": self.allow, "Access-Control-Allow-Methods": self.allow,
                "Access-Control-Allow-Headers": wanted})
        handler = self.handlers.get("GET" if method == "HEAD" else method)
        try:
            if handler is None:
                raise MethodNotAllowed()
            response = await handler(request)
        except Exception as exc:
            response = error_response(exc)
            if isinstance(exc, MethodNotAllowed):
                response.headers["Allow"] = self.allow  # RFC 9110: a 405 lists what is allowed
        if method == "HEAD":
            headers = {k: v for k, v in response.headers.items() if k != "content-length"}
            return Response(status_code=response.status_code, headers=headers)
        return response
