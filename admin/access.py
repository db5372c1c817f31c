"""Where the Admin API may be called from: the ``Host`` check and CORS.

Two browser attacks end here. DNS rebinding: a page on ``attacker.example``, whose name now
resolves to 127.0.0.1, reaches the Admin API with ``Host: attacker.example:8001``; only our
own names and addresses are answered (421 otherwise). Cross-origin pages: unless
``admin_gui_origin`` lists their exact origin, no response carries CORS headers (the page
cannot read an answer) and preflights or writes carrying their ``Origin`` are refused with
403 (so a "simple" form POST cannot change anything either). Allowed origins get Kong's
headers: ``Access-Control-Allow-Origin: <origin>``, ``Access-Control-Allow-Credentials:
true`` and ``Vary: Origin``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.auth import peer_actor
from admin.http import error_response
from gateway.errors import Forbidden, MisdirectedRequest
from gateway.settings.access import origin_of
from gateway.settings.model import Settings
from gateway.text import is_digits

WILDCARDS = frozenset({"0.0.0.0", "::", "*"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Cors(enum.Enum):
    PLAIN = "no Origin: not a browser's cross-origin call, headers as Kong sends them"
    ALLOW = "an allowed origin: Kong's CORS headers added"
    STRIP = "a foreign or same origin reading: served without any CORS header"
    REFUSE = "a foreign origin's preflight or write: 403"


def cors_verdict(method: str, origin: str | None, allowed: bool, same_origin: bool,
                 preflight: bool) -> Cors:
    """What to do with a request, by its ``Origin``; a table test covers every row."""
    if origin is None:
        return Cors.PLAIN
    if allowed:
        return Cors.ALLOW
    if same_origin:
        return Cors.STRIP
    if preflight or method not in SAFE_METHODS:
        return Cors.REFUSE
    return Cors.STRIP


def host_name(value: str) -> str | None:
    """The name in a ``Host`` header, lower case and without brackets; None if malformed."""
    if value.startswith("["):
        end = value.find("]")
        name, rest = (value[1:end], value[end + 1:]) if end > 0 else ("", "")
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not name or (rest and not (rest[:1] == ":" and is_digits(rest[1:]))):
        return None
    return name.lower()


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The names this Admin API answers for and the origins that may read it."""

    names: frozenset[str]
    origins: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        names = set(LOOPBACK_NAMES)
        names.update(n.strip("[]").lower() for n in settings.admin_server_names)
        names.update(x.bind_host.lower() for x in settings.admin_listeners
                     if x.bind_host not in WILDCARDS)
        origins = {*settings.admin_gui_origin, *map(origin_of, settings.admin_gui_url)}
        return cls(frozenset(names), frozenset(origins))

    def host_allowed(self, host: str | None, local_address: str | None) -> bool:
        """``local_address`` is the address the connection arrived on: with a wildcard
        listener that is how "one of our listen addresses" is known."""
        if host is None:
            return True  # HTTP/1.0 without Host: never a browser, so never a rebinding
        name = host_name(host)
        return name is not None and (name in self.names or name == local_address)


class OriginGuard:
    """ASGI middleware applying an ``AccessPolicy`` before anything else runs."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer_actor(scope)  # refused requests are attributed too
        headers = dict(scope.get("headers") or [])
        host = _text(headers.get(b"host"))
        server = scope.get("server")
        if not self.policy.host_allowed(host, server[0] if server else None):
            shown = (host or "")[:200]
            misdirected = MisdirectedRequest(f"Misdirected Request: this Admin API does not answer "
                                       f"for host '{shown}' (see admin_server_names)")
            await error_response(misdirected)(scope, receive, send)
            return
        origin = _text(headers.get(b"origin"))
        method = scope["method"]
        verdict = cors_verdict(
            method, origin, origin in self.policy.origins,
            same_origin=origin == f"{scope.get('scheme', 'http')}://{(host or '').lower()}",
            preflight=method == "OPTIONS" and b"access-control-request-method" in headers)
        if verdict is Cors.REFUSE:
            error = Forbidden(f"Origin '{(origin or '')[:200]}' is not allowed to call the "
                              "Admin API (see admin_gui_origin)")
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, _with_cors(send, verdict, origin))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _with_cors(send: Send, verdict: Cors, origin: str | None) -> Send:
    if verdict is Cors.PLAIN:
        return send

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if verdict is Cors.STRIP:
                headers = [(k, v) for k, v in headers
                           if not k.lower().startswith(b"access-control-")]
            elif origin is not None:
                headers += [(b"access-control-allow-origin", origin.encode("latin-1")),
                            (b"access-control-allow-credentials", b"true"),
                            (b"vary", b"Origin")]
            message = {**message, "headers": headers}
        await send(message)

    return send_with_cors
