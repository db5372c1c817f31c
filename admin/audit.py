"""The Admin API audit log: one row for every write request, accepted or refused.

Why an ASGI middleware fed by notes, and not a hook in the DAO's write path: only the
middleware sees every write request whatever becomes of it — refused by the body decoder
(415, invalid JSON), by a missing parent (404) or by validation (400) before any DAO runs —
together with what the row needs from the HTTP exchange (the actor the auth layer put in the
scope, the method, the path, the final status). What only the entity code knows it writes on
a ``Note`` the middleware put in the scope: the entity (tagged on each write route when the
routes are built), the changed fields (masked by ``EntityApi.body`` at the one place a body is
decoded, so nothing is parsed twice and no secret ever sits in the note) and the id of the row
written. The error name comes from the answer the client gets.

The row is stored before the last body message is passed on, so a client that has its answer
finds its audit row; an audit failure is logged and never changes the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.http import Handler, Resource
from gateway.db import audit as audit_log
from gateway.db.store import Store
from gateway.schema.redact import scrub
from gateway.schema.validate import is_uuid

log = logging.getLogger("ramparts.admin")

OPERATIONS = {"POST": "create", "PUT": "upsert", "PATCH": "update", "DELETE": "delete"}
NOT_AUDITED = ("/schemas/",)  # validation endpoints: they change nothing
SCOPE_KEY = "ramparts.audit"
ACTOR_KEY = "ramparts.actor"  # set by the authentication layer: token:, cert:, peer:
MAX_FIELDS_BYTES = 64 * 1024  # larger change sets are recorded by field name only
MAX_TEXT = 2048  # path and error text
AUDIT_TIMEOUT = 10.0  # seconds an audit insert may delay the answer
PRUNE_ON_WRITE_EVERY = 60  # seconds between the write path's small prunes


@dataclass(slots=True)
class Note:
    """What the handling of one write learned, for its audit row."""

    entity: str | None = None
    operation: str | None = None
    entity_id: str | None = None
    fields: dict[str, Any] | None = None


def note_of(request: Request) -> Note | None:
    """The note of an audited request (``None`` for reads and validation endpoints)."""
    note = request.scope.get(SCOPE_KEY)
    return note if isinstance(note, Note) else None


def noted(request: Request, **facts: Any) -> None:
    note = note_of(request)
    if note is not None:
        for name, value in facts.items():
            setattr(note, name, value)


def audited(entity: str, resource: Resource, **operations: str) -> Resource:
    """Tag the write handlers of ``resource`` with the entity they write (and, where the
    method says otherwise, the operation: ``put="update"``), before any of their code runs."""
    for method, handler in list(resource.handlers.items()):
        if method in OPERATIONS:
            resource.handlers[method] = _tagged(entity, operations.get(method.lower()),
                                                handler)
    return resource


def _tagged(entity: str, operation: str | None, handler: Handler) -> Handler:
    async def run(request: Request) -> Any:
        noted(request, entity=entity, operation=operation)
        return await handler(request)

    return run


@dataclass(slots=True)
class _Answer:
    status: int = 500
    body: bytearray = field(default_factory=bytearray)


class AuditMiddleware:
    """Records each write request (``OPERATIONS``) in the audit log."""

    def __init__(self, app: ASGIApp, store: Store, retention_days: int) -> None:
        self.app = app
        self.store = store
        self.retention_days = retention_days
        self.pruned_at = 0  # the first write prunes at once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in OPERATIONS or \
                scope["path"].startswith(NOT_AUDITED):
            await self.app(scope, receive, send)
            return
        note = Note()
        scope = {**scope, SCOPE_KEY: note}
        answer = _Answer()
        recorded = False

        start: Message | None = None

        async def record_then(message: Message) -> None:
            # The head is held until the row is stored: uvicorn writes a head as soon as it
            # gets it, and a 204 is complete for the client at its head, so a client that
            # reads /audit_log next would otherwise race the insert.
            nonlocal recorded, start
            if message["type"] == "http.response.start":
                answer.status = int(message["status"])
                start = message
                return
            if message["type"] == "http.response.body":
                if answer.status >= 400 and len(answer.body) < MAX_FIELDS_BYTES:
                    answer.body += message.get("body", b"")
                if not message.get("more_body", False) and not recorded:
                    recorded = True
                    await self._record(scope, note, answer)
            if start is not None:
                held, start = start, None
                await send(held)
            await send(message)

        try:
            await self.app(scope, receive, record_then)
        except Exception as exc:
            if not recorded:
                answer.status = int(getattr(exc, "status", 500))
                await self._record(scope, note, answer)
            raise

    async def _record(self, scope: Scope, note: Note, answer: _Answer) -> None:
        now = int(time.time())
        try:
            entry = build_entry(scope, note, answer.status, bytes(answer.body), now)
            async with asyncio.timeout(AUDIT_TIMEOUT):
                await audit_log.append(self.store, entry)
        except Exception as exc:  # the write's answer stands whatever happens here
            log.error("audit log: cannot record %s %s: %s", scope.get("method"),
                      _text(scope.get("path", "")), exc)
            return
        if now - self.pruned_at >= PRUNE_ON_WRITE_EVERY:
            self.pruned_at = now
            try:
                async with asyncio.timeout(AUDIT_TIMEOUT):
                    await audit_log.prune_some(self.store, now, self.retention_days)
            except Exception as exc:
                log.warning("audit log: prune failed: %s", exc)


def build_entry(scope: Scope, note: Note, status: int, error_body: bytes, now: int
                ) -> audit_log.Entry:
    """The audit row of one request, every text made storable and free of key material."""
    path = _text(scope["path"])
    operation = note.operation or OPERATIONS[scope["method"]]
    entity_id = _text(note.entity_id) if note.entity_id else None
    if entity_id is None and operation != "create":
        entity_id = _id_in_path(path)
    return audit_log.Entry(
        created_at=now,
        actor=_text(actor_of(scope)),
        entity=note.entity,
        entity_id=entity_id,
        operation=operation,
        fields=_fields(note.fields),
        method=scope["method"],
        path=path,
        status=status,
        error=_text(error_name(status, error_body)) if status >= 400 else None,
    )


def actor_of(scope: Scope) -> str:
    actor = scope.get(ACTOR_KEY)
    if isinstance(actor, str) and actor:
        return actor
    client = scope.get("client")
    return f"peer:{client[0]}" if client else "peer:unknown"


def error_name(status: int, body: bytes) -> str:
    """Kong's error ``name`` when the answer has one, else its ``message``, else the HTTP
    reason phrase (415 has no body)."""
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        for key in ("name", "message"):
            if isinstance(decoded.get(key), str) and decoded[key]:
                return str(decoded[key])
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _id_in_path(path: str) -> str | None:
    """The id an item path (``/E/{id}``, ``/P/{p}/E/{id}``) addresses; a parent's id earlier
    in the path is not the written row's."""
    last = path.rsplit("/", 1)[-1]
    return last.lower() if is_uuid(last) else None


def _fields(fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    clean = _storable(scrub(fields))
    if len(json.dumps(clean)) > MAX_FIELDS_BYTES:
        return {name: "(too large to record)" for name in clean}
    return dict(clean)


def _storable(value: Any) -> Any:
    """Texts both databases store: no NUL (PostgreSQL refuses it), no lone surrogates."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8").replace(
            "\x00", "\\x00")
    if isinstance(value, Mapping):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


def _text(value: str) -> str:
    return str(_storable(scrub(value)))[:MAX_TEXT]
