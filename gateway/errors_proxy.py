"""Responses the proxy writes itself: Kong's error bodies and KrakenD's health document.

Pure: each function returns the status, headers and body; the connection writes them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

from gateway import version

SERVER = f"ramparts/{version.__version__}".encode()
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole response the gateway makes up (no upstream involved)."""

    status: int
    headers: Headers
    body: bytes


def wants_plain(accept: bytes | None) -> bool:
    if accept is None:
        return False
    lowered = accept.lower()
    return b"text/plain" in lowered and b"json" not in lowered


def error_reply(status: int, message: str, request_id: str, started: float, *,
                accept: bytes | None = None, extra: Headers | None = None,
                plain_message: bool = False) -> Reply:
    """``kong.response.error``: Kong's JSON template with ``request_id`` (or its text/plain
    form); ``plain_message`` is ``kong.response.exit`` with ``{"message": ...}`` only."""
    if plain_message:
        body = json.dumps({"message": message}).encode()
        ctype = b"application/json; charset=utf-8"
    elif wants_plain(accept):
        body = f"{message}\nrequest_id: {request_id}\n".encode()
        ctype = b"text/plain; charset=utf-8"
    else:
        body = (f'{{\n  "message":{json.dumps(message)},\n  "request_id":"{request_id}"\n}}'
                .encode())
        ctype = b"application/json; charset=utf-8"
    headers = [(b"content-type", ctype), (b"server", SERVER),
               (b"x-kong-request-id", request_id.encode()),
               (b"x-kong-response-latency", b"%d" % ((time.monotonic() - started) * 1000)),
               *(extra or [])]
    return Reply(status, headers, body)


def health_document(since: float) -> bytes:
    """KrakenD's ``/__health`` body; ``now`` is written the way Go prints a time."""
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond:06d}000 +0000 UTC"
    stamp += f" m=+{time.monotonic() - since:.9f}"
    return json.dumps({"agents": {}, "now": stamp, "status": "ok"},
                      separators=(",", ":")).encode()


def health_reply(since: float) -> Reply:
    return Reply(200, [(b"content-type", b"application/json; charset=utf-8"),
                       (b"server", SERVER)], health_document(since))
