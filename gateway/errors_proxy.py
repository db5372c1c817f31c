"""Responses the proxy writes itself: Kong's error bodies and KrakenD's health document."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway import version

Send = Callable[[dict[str, Any]], Awaitable[None]]
SERVER = f"ramparts/{version.__version__}".encode()


def _wants_plain(scope: dict[str, Any]) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = value.decode("latin-1").lower()
            return "text/plain" in accept and "json" not in accept
    return False


async def error_response(send: Send, scope: dict[str, Any], status: int, message: str,
                         request_id: str, started: float, *,
                         extra: list[tuple[bytes, bytes]] | None = None,
                         plain_message: bool = False) -> None:
    """``kong.response.error``: Kong's JSON template with ``request_id`` (or its text/plain
    form); ``plain_message`` is ``kong.response.exit`` with ``{"message": ...}`` only."""
    if plain_message:
        body = json.dumps({"message": message}).encode()
        ctype = b"application/json; charset=utf-8"
    elif _wants_plain(scope):
        body = f"{message}\nrequest_id: {request_id}\n".encode()
        ctype = b"text/plain; charset=utf-8"
    else:
        body = (f'{{\n  "message":{json.dumps(message)},\n  "request_id":"{request_id}"\n}}'
                .encode())
        ctype = b"application/json; charset=utf-8"
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
               (b"server", SERVER), (b"x-kong-request-id", request_id.encode()),
               (b"x-kong-response-latency", str(int((time.monotonic() - started) * 1000))
                .encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD"
                else body})


def health_document(since: float) -> bytes:
    """KrakenD's ``/__health`` body; ``now`` is written the way Go prints a time."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond:06d}000 +0000 UTC"
    stamp += f" m=+{time.monotonic() - since:.9f}"
    return json.dumps({"agents": {}, "now": stamp, "status": "ok"},
                      separators=(",", ":")).encode()


async def health_body(send: Send, since: float) -> None:
    body = health_document(since)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), (b"server", SERVER)]})
    await send({"type": "http.response.body", "body": body})
