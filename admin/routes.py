"""The Admin API's URL table, generated from the registry as Kong generates it from its DAOs.

For each entity ``E`` with foreign fields ``f -> P``: ``/E``, ``/E/{key}``, ``/E/{key}/f`` and,
on the parent side, ``/P/{key}/E`` and ``/P/{key}/E/{child}``. Custom routes (meta endpoints,
targets under upstreams, plugin helpers, mtls-auth aliases) come first so that their literal
segments win over ``{key}`` patterns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from admin import audit_api, cluster_api, config_api, meta, openapi
from admin.audit import audited
from admin.crls import crl_routes
from admin.entities import (
    CertificatesApi,
    ConsumersApi,
    EntityApi,
    ScopedKeyApi,
    TargetsApi,
    child_base,
)
from admin.http import Resource, json_response
from admin.shapes import LIST_QUERY, PAGE_QUERY, Shape
from gateway.db.health_marks import mark_target
from gateway.db.store import Store
from gateway.errors import EndpointNotFound
from gateway.schema.compile import FieldSpec
from gateway.schema.entity import EntitySchema

Handler = Callable[[Request], Awaitable[Response]]

# Kong's extra names for the mtls-auth credential endpoints
NESTED_ALIASES = {"mtls_auth_credentials": "mtls-auth"}
TOP_ALIASES = {"mtls_auth_credentials": "mtls-auths"}


def make_apis(store: Store, return_keys: bool = True) -> dict[str, EntityApi]:
    apis: dict[str, EntityApi] = {}
    for name, entity in store.registry.entities.items():
        if not store.registry.entity_plugin_enabled(entity):
            continue
        if name == "certificates":
            apis[name] = CertificatesApi(store, entity, return_keys)
        elif name == "consumers":
            apis[name] = ConsumersApi(store, entity, return_keys)
        elif name == "acls":
            apis[name] = ScopedKeyApi(store, entity, "group", "consumer", return_keys)
        elif name == "targets":
            apis[name] = TargetsApi(store, entity, "target", "upstream", return_keys)
        else:
            apis[name] = EntityApi(store, entity, return_keys)
    return apis


def _key(request: Request, name: str = "key") -> str:
    return str(request.path_params[name])


def entity_routes(api: EntityApi, apis: dict[str, EntityApi], url: str) -> list[BaseRoute]:
    async def collection_get(request: Request) -> Response:
        return await api.list(request)

    async def collection_post(request: Request) -> Response:
        return await api.create(request)

    async def item_get(request: Request) -> Response:
        return await api.get(request, _key(request))

    async def item_put(request: Request) -> Response:
        return await api.put(request, _key(request))

    async def item_patch(request: Request) -> Response:
        return await api.patch(request, _key(request))

    async def item_delete(request: Request) -> Response:
        return await api.delete(request, _key(request))

    name = api.entity.name
    query = ("size", "offset", "tags", "custom_id") if name == "consumers" else LIST_QUERY
    routes: list[BaseRoute] = [
        Route(f"/{url}", audited(name, Resource(Shape("collection", name, query=query),
                                                get=collection_get, post=collection_post))),
    ]
    for spec in api.entity.foreign_fields:
        parent_api = apis.get(spec.foreign.entity) if spec.foreign else None
        if parent_api is None or spec.name in api.entity.hidden_parent_endpoints:
            continue
        routes.append(Route(f"/{url}/{{key}}/{spec.name}", _parent_resource(api, spec,
                                                                           parent_api)))
    keyed = Shape("entity", name, key_field=api.entity.endpoint_key)
    routes.append(Route(f"/{url}/{{key}}", audited(name, Resource(
        keyed, get=item_get, put=item_put, patch=item_patch, delete=item_delete))))
    return routes


def _parent_resource(api: EntityApi, spec: FieldSpec, parent_api: EntityApi) -> Resource:
    async def handler(request: Request) -> Response:
        return await api.parent(request, _key(request), spec, parent_api)

    return audited(parent_api.entity.name,
                   Resource(Shape("parent", parent_api.entity.name), get=handler,
                            put=handler, patch=handler, delete=handler))


def nested_routes(parent: EntityApi, child: EntityApi, spec: FieldSpec, parent_url: str,
                  child_url: str) -> list[BaseRoute]:
    field = spec.name

    async def forced(request: Request) -> tuple[str, dict[str, dict[str, str]], object]:
        row = await parent.require(_key(request, "pkey"))
        return row["id"], {field: {"id": row["id"]}}, row

    async def list_children(request: Request) -> Response:
        pid, _, _ = await forced(request)
        base = child_base(parent_url, _key(request, "pkey"), child_url)
        return await child.list(request, where={field: {"id": pid}}, base=base)

    async def create_child(request: Request) -> Response:
        _, ref, _ = await forced(request)
        return await child.create(request, forced=ref)

    async def get_child(request: Request) -> Response:
        prow = await parent.require(_key(request, "pkey"))
        return json_response(200, child.shown(await child.owned(_key(request), field, prow)))

    async def put_child(request: Request) -> Response:
        prow = await parent.require(_key(request, "pkey"))
        return await child.put(request, _key(request), forced={field: {"id": prow["id"]}},
                               parent=prow)

    async def patch_child(request: Request) -> Response:
        prow = await parent.require(_key(request, "pkey"))
        row = await child.owned(_key(request), field, prow)
        return await child.patch_row(request, row, defaults={field: {"id": prow["id"]}})

    async def delete_child(request: Request) -> Response:
        prow = await parent.require(_key(request, "pkey"))
        row = await child.owned(_key(request), field, prow)
        await child.dao.delete(child.written(request, row)["id"])
        return Response(status_code=204)

    base = f"/{parent_url}/{{pkey}}/{child_url}"
    name = child.entity.name
    key = child.key_field if isinstance(child, ScopedKeyApi) else child.entity.endpoint_key
    return [
        Route(base, audited(name, Resource(
            Shape("collection", name, forced=field, query=PAGE_QUERY),
            get=list_children, post=create_child))),
        Route(base + "/{key}", audited(name, Resource(
            Shape("entity", name, forced=field, key_field=key),
            get=get_child, put=put_child, patch=patch_child, delete=delete_child))),
    ]


def children_of(entity: EntitySchema, apis: dict[str, EntityApi]
                ) -> list[tuple[EntityApi, FieldSpec]]:
    out = []
    for child in apis.values():
        for spec in child.entity.foreign_fields:
            if spec.foreign and spec.foreign.entity == entity.name:
                out.append((child, spec))
    return out


def build(store: Store, node: meta.NodeInfo) -> list[BaseRoute]:
    apis = make_apis(store, return_keys=node.settings.admin_return_keys)
    routes: list[BaseRoute] = [*meta.routes(store, apis, node), *audit_api.routes(store),
                               *cluster_api.routes(store, node.settings.cluster_node_ttl),
                               *config_api.routes(store, node), openapi.route(store.registry),
                               *target_routes(apis, node), *crl_routes(apis)]
    for name, api in apis.items():
        if not api.entity.generate_admin_api:
            continue
        for child, spec in children_of(api.entity, apis):
            if not child.entity.generate_admin_api:
                continue
            routes.extend(nested_routes(api, child, spec, api.entity.url_name,
                                        child.entity.url_name))
            alias = NESTED_ALIASES.get(child.entity.name)
            if alias:
                routes.extend(nested_routes(api, child, spec, api.entity.url_name, alias))
        routes.extend(entity_routes(api, apis, api.entity.url_name))
        if name in TOP_ALIASES:
            routes.extend(entity_routes(api, apis, TOP_ALIASES[name]))
    return routes


def target_routes(apis: dict[str, EntityApi], node: meta.NodeInfo) -> list[BaseRoute]:
    """Targets live under their upstream only; PUT and PATCH both update (Kong 3.x); health
    is read from this node's balancer and set for the whole cluster."""
    upstreams, targets = apis["upstreams"], apis["targets"]
    store = upstreams.store

    async def health(request: Request) -> Response:
        prow = await upstreams.require(_key(request, "pkey"))
        health = await node.upstream_health(prow["id"])
        if request.query_params.get("balancer_health") in ("1", "true"):
            state = "HEALTHCHECKS_OFF"
            if health is not None and health.checks_on:
                state = "HEALTHY" if health.available else "UNHEALTHY"
            return json_response(200, {"data": {"health": state, "id": prow["id"]},
                                       "next": None, "node_id": node.node_id})
        async with store.read() as conn:
            rows = await targets.dao.find(conn, {"upstream": {"id": prow["id"]}})
        for row in rows:
            row["health"] = health.targets.get(row["target"], "HEALTHCHECKS_OFF") \
                if health is not None else "HEALTHCHECKS_OFF"
        return json_response(200, {"data": rows, "next": None, "node_id": node.node_id})

    def setter(healthy: bool) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            prow = await upstreams.require(_key(request, "pkey"))
            row = await targets.owned(_key(request), "upstream", prow)
            address = request.path_params.get("address")
            if address is not None and address != row["target"]:
                raise EndpointNotFound()  # no DNS-resolved sub-addresses here
            await mark_target(store, targets.written(request, row)["id"], healthy)
            return Response(status_code=204)

        return handler

    async def listing(request: Request) -> Response:
        prow = await upstreams.require(_key(request, "pkey"))
        suffix = "/all" if request.url.path.rstrip("/").endswith("/all") else ""
        base = child_base("upstreams", _key(request, "pkey"), "targets") + suffix
        return await targets.list(request, where={"upstream": {"id": prow["id"]}}, base=base)

    async def create(request: Request) -> Response:
        prow = await upstreams.require(_key(request, "pkey"))
        return await targets.create(request, forced={"upstream": {"id": prow["id"]}})

    async def get(request: Request) -> Response:
        prow = await upstreams.require(_key(request, "pkey"))
        return json_response(200, await targets.owned(_key(request), "upstream", prow))

    async def update(request: Request) -> Response:
        prow = await upstreams.require(_key(request, "pkey"))
        row = await targets.owned(_key(request), "upstream", prow)
        return await targets.patch_row(request, row)

    async def delete(request: Request) -> Response:
        prow = await upstreams.require(_key(request, "pkey"))
        row = await targets.owned(_key(request), "upstream", prow)
        await targets.dao.delete(targets.written(request, row)["id"])
        return Response(status_code=204)

    def writes(resource: Resource) -> Resource:  # Kong 3.x: a PUT on a target updates it
        return audited("targets", resource, put="update")

    base = "/upstreams/{pkey}/targets"
    action = Shape("action", "targets")
    children = Shape("collection", "targets", forced="upstream", query=PAGE_QUERY)
    return [
        Route("/upstreams/{pkey}/health", Resource(_HEALTH, get=health)),
        Route(base + "/{key}/healthy", writes(Resource(action, put=setter(True)))),
        Route(base + "/{key}/unhealthy", writes(Resource(action, put=setter(False)))),
        Route(base + "/{key}/{address}/healthy", writes(Resource(action, put=setter(True)))),
        Route(base + "/{key}/{address}/unhealthy", writes(Resource(action, put=setter(False)))),
        Route(base + "/all", Resource(children, get=listing)),
        Route(base, writes(Resource(children, get=listing, post=create))),
        Route(base + "/{key}", writes(Resource(
            Shape("entity", "targets", forced="upstream", put_updates=True),
            get=get, put=update, patch=update, delete=delete))),
    ]


_HEALTH = Shape("meta", "targets", query=("balancer_health",), summary=(
    "this node's view of the upstream's targets (or, with balancer_health, of the balancer)"))
