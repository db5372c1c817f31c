"""``/ca_certificates/{id}/crl``: the CRL of a CA certificate (seed 003; not a Kong endpoint).

POST uploads or replaces it (checked: a CRL, signed by that CA, not past nextUpdate), GET
shows it, DELETE removes it. mtls-auth consults it before OCSP and the CRL distribution point.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from admin import body as bodies
from admin.entities import EntityApi
from admin.http import Resource, json_response, no_content
from gateway.errors import EndpointNotFound, SchemaViolation
from gateway.plugins.mtls_auth import crl as crls


def crl_routes(apis: dict[str, EntityApi]) -> list[BaseRoute]:
    if "ca_crls" not in apis:
        return []
    cas, api = apis["ca_certificates"], apis["ca_crls"]
    store, dao = api.store, api.dao

    async def current(ca_id: str) -> dict[str, Any] | None:
        async with store.read() as conn:
            return await dao.find_one(conn, {"ca_certificate": {"id": ca_id}})

    async def post(request: Request) -> Response:
        ca = await cas.require(str(request.path_params["key"]))
        text = (await bodies.read(request)).data.get("crl")
        problem = crls.upload_problem(text, ca["cert"])
        if problem is not None:
            raise SchemaViolation({"crl": problem})
        existing = await current(ca["id"])
        ident = existing["id"] if existing else str(uuid.uuid4())
        row = await dao.upsert(ident, {"ca_certificate": {"id": ca["id"]}, "crl": text})
        return json_response(200 if existing else 201, described(row))

    async def get(request: Request) -> Response:
        ca = await cas.require(str(request.path_params["key"]))
        row = await current(ca["id"])
        if row is None:
            raise EndpointNotFound()
        return json_response(200, described(row))

    async def delete(request: Request) -> Response:
        ca = await cas.require(str(request.path_params["key"]))
        row = await current(ca["id"])
        if row is not None:
            await dao.delete(row["id"])
        return no_content()

    return [Route("/ca_certificates/{key}/crl", Resource(get=get, post=post, delete=delete))]


def described(row: dict[str, Any]) -> dict[str, Any]:
    """The row plus what the CRL says: its update times and how many serials it revokes."""
    parsed = crls.parse(row["crl"]).crl
    nxt = parsed.next_update_utc
    return {**row, "last_update": int(parsed.last_update_utc.timestamp()),
            "next_update": int(nxt.timestamp()) if nxt else None,
            "revoked_count": len(list(parsed))}
