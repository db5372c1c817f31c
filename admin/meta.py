"""Node endpoints: ``GET /``, ``/status``, ``/endpoints``, ``/schemas``, ``/tags`` and the
plugin helpers, with Kong's payload shapes."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from admin.entities import page_size
from admin.http import Resource, json_response
from admin.shapes import PAGE_QUERY, Shape
from gateway import version
from gateway.db import tables
from gateway.db.dao import tag_page
from gateway.db.probe import DatabaseProbe
from gateway.db.store import Store
from gateway.declarative.dbless import DblessStore
from gateway.errors import EndpointNotFound, InvalidUnique
from gateway.reload import Reloader
from gateway.schema import checks as ck
from gateway.schema import fields as m
from gateway.schema.compile import MISSING, FieldSpec, RecordSchema
from gateway.schema.typedefs import tag as tag_error
from gateway.settings.load import redacted
from gateway.settings.model import Settings
from gateway.stats import ServerStats
from gateway.upstream.balancer import Balancers
from gateway.workers import control, view
from gateway.workers.board import ROLE_WORKER, Board
from gateway.workers.handoff import control_path

if TYPE_CHECKING:
    from admin.entities import EntityApi


@dataclass
class NodeInfo:
    """What ``GET /`` and ``/status`` report about this process."""

    settings: Settings
    node_id: str
    stats: ServerStats = field(default_factory=ServerStats)
    hostname: str = field(default_factory=socket.gethostname)
    balancers: Balancers | None = None  # this node's health view (None: no proxy here)
    reloader: Reloader | None = None  # this node's live configuration (None: no proxy here)
    # the node's workers, when they run in processes of their own (admin/supervisor.py):
    # their status board and the run directory of their control sockets
    board: Board | None = None
    run_dir: str | None = None

    def server_status(self) -> dict[str, int]:
        if self.board is None:
            return self.stats.as_status()
        return view.server_status(self.board.entries().values())

    def worker_pids(self) -> list[int]:
        if self.board is None:
            return [os.getpid()]
        return view.worker_pids(self.board.entries().values())

    async def wake_workers(self) -> None:
        """A write was committed: every worker reloads now rather than at its next poll."""
        if self.board is None or self.run_dir is None:
            return
        entries = [i for i, e in self.board.entries().items() if e.role == ROLE_WORKER]
        await asyncio.gather(*(control.wake(control_path(self.run_dir, i)) for i in entries))

    async def upstream_health(self, upstream_id: str) -> control.HealthView | None:
        """What the node's balancers think of an upstream's targets."""
        if self.board is None or self.run_dir is None:
            balancer = self.balancers.get(upstream_id) if self.balancers else None
            return None if balancer is None else control.view_of(balancer)
        entries = [i for i, e in self.board.entries().items() if e.role == ROLE_WORKER]
        views = await asyncio.gather(*(control.ask(control_path(self.run_dir, i), upstream_id)
                                       for i in entries))
        return control.merge(v for v in views if v is not None)

    def configuration_status(self) -> dict[str, Any]:
        """The version this node serves next to the stored one, and why it cannot serve
        the stored one when a build fails."""
        if self.board is not None:
            return view.configuration_status(self.board.entries().values())
        if self.reloader is None:
            return {}
        applied = self.reloader.holder.current.version
        out: dict[str, Any] = {"applied_configuration_version": applied if applied >= 0
                               else None}
        if self.reloader.applied_at is not None:  # when this node swapped it in
            out["configuration_applied_at"] = round(self.reloader.applied_at, 3)
        failure = self.reloader.failure
        if failure is not None:
            out["configuration_error"] = (f"configuration version {failure.version} cannot "
                                          f"be built: {failure.error}")
        return out


def routes(store: Store, apis: Mapping[str, EntityApi], node: NodeInfo) -> list[BaseRoute]:
    registry = store.registry
    probe = DatabaseProbe(store)

    async def root(request: Request) -> Response:
        async with store.read() as conn:
            names = (await conn.execute(sa.select(tables.table("plugins").c.name).distinct()
                                        )).scalars().all()
        return json_response(200, {
            "tagline": "Welcome to kong",
            "version": version.KONG_COMPAT_VERSION,
            "edition": "community",
            "hostname": node.hostname,
            "node_id": node.node_id,
            "timers": {"running": 0, "pending": 0},
            "plugins": {
                "available_on_server": {
                    name: {"version": spec.version, "priority": spec.priority}
                    for name, spec in registry.enabled.items()},
                "enabled_in_cluster": sorted(names),
            },
            "configuration": redacted(node.settings),
            "pids": {"master": os.getppid() if node.board is not None else os.getpid(),
                     "workers": node.worker_pids()},
            "ramparts": {"version": version.__version__},
        })

    async def status(request: Request) -> Response:
        # a liveness probe: answers from this node's state, never waiting on the database
        database = await probe.check()
        body: dict[str, Any] = {"database": {"reachable": database.reachable},
                                "server": node.server_status()}
        if database.version is not None:
            body["configuration_version"] = database.version
        body.update(node.configuration_status())
        if isinstance(store, DblessStore):  # Kong's DB-less /status: the hash, no database
            del body["database"]
            body["configuration_hash"] = store.config_hash
        return json_response(200, body)

    async def endpoints(request: Request) -> Response:
        paths = sorted({r.path for r in request.app.routes if isinstance(r, Route)})
        return json_response(200, {"data": paths})

    async def enabled(request: Request) -> Response:
        return json_response(200, {"enabled_plugins": list(registry.enabled)})

    async def plugin_schema(request: Request) -> Response:
        spec = registry.enabled.get(request.path_params["name"])
        if spec is None:
            raise EndpointNotFound(f"No plugin named '{request.path_params['name']}'")
        return json_response(200, schema_json(spec.config))

    async def entity_schema(request: Request) -> Response:
        name = request.path_params["name"]
        api = apis.get(name)
        if api is None:
            raise EndpointNotFound(f"No entity named '{name}'")
        return json_response(200, schema_json(api.entity.record))

    async def validate_entity(request: Request) -> Response:
        name = request.path_params.get("name", "plugins")
        api = apis.get(name)
        if api is None:
            raise EndpointNotFound(f"No entity named '{name}'")
        data = await api.body(request)
        api.dao.values_for("insert", None, api.dao.prepare(data, "insert"), None)
        return json_response(200, {"message": "schema validation successful"})

    async def tags(request: Request) -> Response:
        tag = request.path_params.get("tag")
        if tag is not None and tag_error(tag):
            raise InvalidUnique("tag", str(tag_error(tag)))
        size = page_size(request)
        async with store.read() as conn:
            page = await tag_page(conn, size=size, offset=request.query_params.get("offset"),
                                  tag=tag)
        out: dict[str, Any] = {"data": page.data, "next": None}
        if page.offset:
            base = "/tags" if tag is None else f"/tags/{quote(tag, safe='')}"
            out["offset"] = page.offset
            out["next"] = f"{base}?offset={quote(page.offset, safe='')}"
        return json_response(200, out)

    return [
        Route("/", Resource(_meta(ROOT), get=root)),
        Route("/status", Resource(_meta(STATUS), get=status)),
        Route("/endpoints", Resource(_meta(_strings("data")), get=endpoints)),
        Route("/plugins/enabled", Resource(_meta(_strings("enabled_plugins")), get=enabled)),
        Route("/plugins/schema/{name}", Resource(_meta(SCHEMA), get=plugin_schema)),
        Route("/schemas/plugins/validate", Resource(Shape("validate", "plugins"),
                                                    post=validate_entity)),
        Route("/schemas/plugins/{name}", Resource(_meta(SCHEMA), get=plugin_schema)),
        Route("/schemas/{name}/validate", Resource(Shape("validate"), post=validate_entity)),
        Route("/schemas/{name}", Resource(_meta(SCHEMA), get=entity_schema)),
        Route("/tags", Resource(_meta(TAGS, PAGE_QUERY), get=tags)),
        Route("/tags/{tag}", Resource(_meta(TAGS, PAGE_QUERY), get=tags)),
    ]


# ---------------------------------------------------------------------------- contract
# The 200 bodies of the node endpoints, for the OpenAPI document (admin/openapi.py).


def _meta(body: dict[str, Any], query: tuple[str, ...] = ()) -> Shape:
    return Shape("meta", query=query, responses={"GET": body})


def _object(required: tuple[str, ...], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": props}


def _strings(name: str) -> dict[str, Any]:
    return _object((name,), **{name: {"type": "array", "items": {"type": "string"}}})


ROOT = _object(("tagline", "version", "node_id", "plugins", "configuration"),
               tagline={"type": "string"}, version={"type": "string"},
               node_id={"type": "string", "format": "uuid"}, plugins={"type": "object"},
               configuration={"type": "object"})
STATUS = _object(("database", "server"),
                 database=_object(("reachable",), reachable={"type": "boolean"}),
                 server={"type": "object", "additionalProperties": {"type": "integer"}},
                 configuration_version={"type": "integer"})
SCHEMA = _object(("fields",), fields={"type": "array", "items": {"type": "object"}},
                 entity_checks={"type": "array"})
TAGS = _object(("data", "next"), next={"type": ["string", "null"]}, offset={"type": "string"},
               data={"type": "array", "items": _object(
                   ("entity_name", "entity_id", "tag"), entity_name={"type": "string"},
                   entity_id={"type": "string"}, tag={"type": "string"})})


# ---------------------------------------------------------------------------- schema JSON


def schema_json(record: RecordSchema) -> dict[str, Any]:
    """Kong's ``/schemas`` shape: ``{"fields": [{name: {...}}], "entity_checks": [...]}``."""
    out: dict[str, Any] = {"fields": [{f.name: field_json(f)} for f in record.fields
                                      if not f.has(m.Transient)]}
    entity_checks = [c for c in (check_json(c) for c in record.checks) if c]
    if entity_checks:
        out["entity_checks"] = entity_checks
    return out


def field_json(spec: FieldSpec) -> dict[str, Any]:
    kind = "foreign" if spec.kind == "foreign" else spec.kind
    if spec.has(m.PluginConfig):
        kind = "record"
    out: dict[str, Any] = {"type": kind}
    if spec.required and not spec.has(m.Auto):
        out["required"] = True
    if spec.has(m.Auto):
        out["auto"] = True
    if spec.has(m.Uuid):
        out["uuid"] = True
    if spec.has(m.Timestamp):
        out["timestamp"] = True
    if spec.has(m.Unique):
        out["unique"] = True
    if spec.has(m.Secret):
        out["encrypted"] = True  # Kong's attribute: sealed when a keyring is configured
    if spec.default is not MISSING and spec.kind != "record" and not spec.has(m.PluginConfig):
        out["default"] = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    if spec.foreign:
        out["reference"] = spec.foreign.entity
        out["on_delete"] = spec.foreign.on_delete
    for mk in spec.markers:
        if isinstance(mk, m.OneOf):
            out["one_of"] = list(mk.values)
        elif isinstance(mk, m.Between):
            out["between"] = [mk.lo, mk.hi]
        elif isinstance(mk, m.LenMin):
            out["len_min"] = mk.n
    if spec.elements is not None:
        out["values" if spec.kind == "map" else "elements"] = field_json(spec.elements)
        if spec.kind == "map":
            out["keys"] = {"type": "string"}
    if spec.record is not None:
        out["fields"] = schema_json(spec.record)["fields"]
    return out


def check_json(check: Any) -> dict[str, Any] | None:
    named: dict[type, str] = {
        ck.AtLeastOneOf: "at_least_one_of", ck.OnlyOneOf: "only_one_of",
        ck.MutuallyRequired: "mutually_required", ck.MutuallyExclusive: "mutually_exclusive",
        ck.Distinct: "distinct"}
    for cls, name in named.items():
        if isinstance(check, cls):
            return {name: list(getattr(check, "fields", ()))}
    if isinstance(check, ck.Conditional):
        return {"conditional": {"if_field": check.if_field, "then_field": check.then_field}}
    fields = getattr(check, "fields", None)
    if fields:
        return {"custom_entity_check": {"field_sources": list(fields)}}
    return None

