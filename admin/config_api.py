"""``/config`` (Kong's ``kong/api/routes/config.lua``) and DB-less mode's read-only Admin API.

``POST /config`` takes the declarative table as the JSON body, a ``config`` field (JSON, form
or multipart: ``curl -F config=@kong.yml``) or a raw YAML/JSON body; ``check_hash=1`` answers
304 when nothing changed, ``flatten_errors=1`` adds ``flattened_errors``; 201 with the parsed
entities. ``GET /config`` returns the current configuration as Kong's export. On a node with a
database both answer 400.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from admin import body as bodies
from admin.http import Resource, json_response
from admin.meta import NodeInfo
from gateway.db.store import Store
from gateway.declarative import dbio, dbless, render
from gateway.declarative.source import load_text
from gateway.errors import BadRequest, InvalidDeclarativeConfig, OperationUnsupported
from gateway.schema.validate import is_uuid

ONLY_DBLESS = "this endpoint is only available when Kong is configured to not use a database"
_TRUE = ("1", "true")


def routes(store: Store, node: NodeInfo) -> list[BaseRoute]:
    async def get(request: Request) -> Response:
        if not isinstance(store, dbless.DblessStore):
            raise BadRequest(ONLY_DBLESS)
        rows = await dbio.read_rows(store, secrets=node.settings.admin_return_keys)
        return json_response(200, {"config": render.dump(dbio.export_document(store, rows))})

    async def post(request: Request) -> Response:
        if not isinstance(store, dbless.DblessStore):
            raise BadRequest(ONLY_DBLESS)
        doc = await _document(request)
        query = request.query_params
        try:
            config = await dbless.load(store, doc,
                                       check_hash=query.get("check_hash") in _TRUE)
        except InvalidDeclarativeConfig as exc:
            exc.with_flattened = query.get("flatten_errors") in _TRUE
            raise
        if config is None:
            return Response(status_code=304)
        rows = config.rows()
        if not node.settings.admin_return_keys:  # write-only keys: never in an answer
            rows = {name: {i: store.dao(name).without_secrets(r) for i, r in by_id.items()}
                    for name, by_id in rows.items()}
        return json_response(201, rows)

    return [Route("/config", Resource(get=get, post=post))]


async def _document(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("application/json", "multipart/form-data",
                             "application/x-www-form-urlencoded")):
        raw = await request.body()
        if not raw.strip():
            raise BadRequest("expected a declarative configuration")
        return await asyncio.to_thread(load_text, raw)  # a raw YAML (or JSON) body
    data = (await bodies.read(request)).data
    if "_format_version" in data:
        return data
    config = data.get("config")
    if isinstance(config, dict):
        return config
    if isinstance(config, str) and config.strip():
        return await asyncio.to_thread(load_text, config)
    raise BadRequest("expected a declarative configuration")


_OPERATIONS = {"POST": "create", "PUT": "create or update", "PATCH": "update",
               "DELETE": "remove"}
# writes that are not configuration: validation only, or this node's own records
_ALLOWED = ("/config", "/schemas/")
_HEALTH = ("/healthy", "/unhealthy")  # a target's health is this cluster's state, not config


class DblessGuard:
    """DB-less: the configuration changes through ``POST /config`` only; any other write to
    an entity endpoint gets Kong's 405 (code 12, operation unsupported)."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.entities = store.registry.entities
        names: dict[str, str] = {}
        for name, entity in self.entities.items():
            names[entity.url_name] = name
            names[name] = name
        names.update({"mtls-auth": "mtls_auth_credentials", "mtls-auths":
                      "mtls_auth_credentials"})
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = _OPERATIONS.get(scope.get("method", "")) if scope["type"] == "http" \
            else None
        path: str = scope.get("path", "")
        if operation is None or path.startswith(_ALLOWED) or path.endswith(_HEALTH):
            await self.app(scope, receive, send)
            return
        target = self._target(path)
        if target is None:
            await self.app(scope, receive, send)
            return
        entity, by = target
        how = f" by '{by}'" if by else ""
        exc = OperationUnsupported(f"cannot {operation} '{entity}' entities{how} when not "
                                   "using a database")
        response = Response(json.dumps(exc.body()), status_code=exc.status,
                            media_type="application/json; charset=utf-8")
        await response(scope, receive, send)

    def _target(self, path: str) -> tuple[str, str | None] | None:
        """The entity a path writes (the last collection segment: ``/services/s/routes``)
        and, for an item named by its endpoint key, that key's field (Kong's ``..._by``)."""
        segments = [s for s in path.split("/") if s]
        found = None
        for i in range(0, len(segments), 2):
            found = self.names.get(segments[i], found)
        if found is None:
            return None
        by = None
        if len(segments) % 2 == 0 and not is_uuid(segments[-1]):
            by = self.entities[found].endpoint_key
        return found, by
