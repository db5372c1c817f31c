"""Who is calling the Admin API, and may they do this: tokens, client certificates, roles.

Credentials, in this order: a token (``Kong-Admin-Token: <token>``, Kong EE's header, or
``Authorization: Bearer <token>``), then a verified client certificate on a TLS listener whose
subject ``admin_client_roles`` maps to a role. Without credentials a request is served as
today (Kong OSS) only where they are not required: on a loopback listener unless
``admin_auth: required``. Credentials that are sent are always checked, wherever: an unknown
or revoked token is 401, a read-only principal cannot write (403).

Every request leaves with ``scope["ramparts.actor"]`` set (``token:<name>``,
``cert:<subject>`` or ``peer:<ip>``) for the handlers and middleware that record who did what.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from admin.http import error_response
from gateway.db import admin_tokens
from gateway.db.store import Store
from gateway.errors import Forbidden, RampartsError, Unauthorized
from gateway.settings.listen import Listener
from gateway.settings.model import Settings

log = logging.getLogger("ramparts.admin")

ACTOR = "ramparts.actor"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ACTIONS = {"POST": "create", "PUT": "create or update", "PATCH": "update", "DELETE": "delete"}


@dataclass(frozen=True, slots=True)
class Principal:
    actor: str  # token:<name> | cert:<subject> | peer:<ip>
    role: str   # admin | read-only


def peer_actor(scope: Scope) -> str:
    """Set (and return) the actor of a caller known only by its address."""
    client = scope.get("client")
    actor = scope[ACTOR] = f"peer:{client[0] if client else 'unknown'}"
    return actor


def credentials_required(settings: Settings, listener: Listener) -> bool:
    """Kong OSS serves loopback callers without credentials; anything else needs them (a
    non-loopback listener with ``admin_auth: off`` never starts: settings/access.py)."""
    return settings.admin_auth == "required" or not listener.loopback


def presented_token(headers: Mapping[bytes, bytes]) -> str | None:
    """The token sent, if any. Other ``Authorization`` schemes (Basic from a proxy in front)
    are not ours and are ignored."""
    value = headers.get(b"kong-admin-token")
    if value is not None:
        return value.decode("latin-1").strip()
    auth = headers.get(b"authorization")
    if auth is not None:
        scheme, _, rest = auth.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer":
            return rest.strip()
    return None


def authorize(principal: Principal, method: str) -> None:
    if principal.role != "admin" and method not in READ_METHODS:
        action = ACTIONS.get(method, "change")
        raise Forbidden(f"You do not have permissions to {action} this resource "
                        f"({principal.actor} has the {principal.role} role)")


class AuthMiddleware:
    """Authenticates and authorizes every request of one listener."""

    def __init__(self, app: ASGIApp, store: Store, settings: Settings,
                 listener: Listener) -> None:
        self.app = app
        self.store = store
        self.required = credentials_required(settings, listener)
        self.roles: dict[str, str] = dict(settings.admin_client_roles or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = peer_actor(scope)
        try:
            principal = await self.authenticate(scope, peer)
            authorize(principal, scope["method"])
        except RampartsError as exc:
            if exc.status in (401, 403):
                log.info("Admin API %s %s from %s: %s %s", scope["method"], scope["path"],
                         scope[ACTOR], exc.status, exc)
            await error_response(exc)(scope, receive, send)
            return
        scope[ACTOR] = principal.actor
        await self.app(scope, receive, send)

    async def authenticate(self, scope: Scope, peer: str) -> Principal:
        token = presented_token(dict(scope.get("headers") or []))
        if token is not None:
            found = await admin_tokens.find(self.store, token)
            if found is None:
                raise Unauthorized(token_sent=True)
            scope[ACTOR] = f"token:{found.name}"
            return Principal(scope[ACTOR], found.role)
        principal = self._certificate(scope.get("extensions", {}).get("tls"))
        if principal is not None:
            scope[ACTOR] = principal.actor
            return principal
        if self.required and scope["method"] != "OPTIONS":  # preflights carry no credentials
            raise Unauthorized()
        return Principal(peer, "read-only" if self.required else "admin")

    def _certificate(self, tls: dict[str, Any] | None) -> Principal | None:
        if not tls or not tls.get("client_cert_chain"):
            return None
        if not tls.get("client_cert_verified"):
            raise Unauthorized(f"TLS certificate failed verification: "
                               f"{tls.get('client_cert_error')}")
        subject = str(tls.get("client_cert_name"))
        role = self.roles.get(subject)
        if role is None:
            raise Forbidden(f"You do not have permissions: the certificate subject '{subject}' "
                            "has no role in admin_client_roles")
        return Principal(f"cert:{subject}", role)
