"""``GET /openapi.json``: the contract is derived from the routes and the entity schemas."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import openapi
from admin.http import Resource, json_response
from gateway import registry
from gateway.schema.entities.routes import ROUTES
from gateway.schema.typedefs import PROTOCOLS


async def contract(admin: httpx.AsyncClient) -> dict[str, Any]:
    response = await admin.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def validator(document: dict[str, Any], name: str) -> jsonschema_rs.Draft202012Validator:
    """A JSON Schema validator for one component, its references resolved in the document."""
    schema = {**document["components"]["schemas"][name],
              "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


async def test_every_served_path_and_method_is_in_the_contract(
        admin: httpx.AsyncClient) -> None:
    document = await contract(admin)
    assert document["openapi"].startswith("3.1")
    served = (await admin.get("/endpoints")).json()["data"]
    assert sorted(document["paths"]) == sorted(served)
    for path, item in document["paths"].items():
        allow = (await admin.options(path.replace("{", "").replace("}", ""))).headers["allow"]
        methods = {m for m in allow.split(", ") if m not in ("HEAD", "OPTIONS")}
        assert {m.upper() for m in item} == methods, path
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", ())
                        if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}


async def test_bodies_carry_the_entity_fields_types_required_enums_and_defaults(
        admin: httpx.AsyncClient) -> None:
    schemas = (await contract(admin))["components"]["schemas"]
    create = schemas["services.create"]
    assert create["required"] == ["host"]
    assert create["properties"]["protocol"]["enum"] == list(PROTOCOLS)
    assert create["properties"]["port"] == {"type": "integer", "minimum": 0, "maximum": 65535,
                                            "default": 80}
    assert create["properties"]["url"]["type"] == "string"  # Kong's shorthand
    assert create["properties"]["client_certificate"]["type"] == ["object", "null"]
    assert create["additionalProperties"] is False
    routes = schemas["routes.create"]["properties"]
    assert routes["protocols"]["minItems"] == 1
    assert routes["headers"]["additionalProperties"]["items"]["type"] == "string"
    assert routes["sources"]["items"]["properties"]["port"]["maximum"] == 65535
    upstream = schemas["upstreams.create"]["properties"]["healthchecks"]
    assert upstream["properties"]["active"]["properties"]["healthy"]["properties"][
        "http_statuses"]["default"] == [200, 302]
    # the row lists every stored field; the transient `snis` shorthand only goes in
    assert set(schemas["routes"]["required"]) == {f.name for f in ROUTES.stored_fields}
    assert "snis" in schemas["certificates.create"]["properties"]
    assert "snis" not in schemas["certificates"]["properties"]
    assert "key" not in schemas["certificates"]["required"]  # key material may be withheld
    assert schemas["targets.create.under.upstream"]["required"] == ["target"]
    # a PUT to a name writes the name from the URL, whatever the body says
    assert schemas["services.put.keyed.name"]["properties"]["name"] == {}
    assert schemas["services.put.keyed.name"]["properties"]["id"] == {}
    keyed_acl = schemas["acls.put.under.consumer.keyed.group"]
    assert keyed_acl["properties"]["group"] == {} and "required" not in keyed_acl
    assert schemas["consumers.create"]["properties"]["updated_at"] == {}  # the server's clock
    assert schemas["consumers.create"]["properties"]["created_at"]["exclusiveMinimum"] == 0


async def test_plugin_bodies_select_their_config_by_name(admin: httpx.AsyncClient) -> None:
    schemas = (await contract(admin))["components"]["schemas"]
    create = schemas["plugins.create"]
    assert set(create["discriminator"]["mapping"]) == set(registry.build().enabled)
    mtls = schemas["plugins.create.mtls-auth"]
    assert mtls["properties"]["name"]["const"] == "mtls-auth"
    assert "config" in mtls["required"]
    assert mtls["properties"]["config"]["required"] == ["ca_certificates"]
    acl = schemas["plugins.create.acl"]["properties"]["config"]
    assert acl["properties"]["allow"]["type"] == ["array", "null"]


async def test_errors_are_kong_bodies(admin: httpx.AsyncClient) -> None:
    document = await contract(admin)
    post = document["paths"]["/services"]["post"]["responses"]
    assert set(post) >= {"201", "400", "404", "409", "413", "415"}
    responses = document["components"]["responses"]
    assert "content" not in responses["415"]  # Kong answers 415 with an empty body
    bad = (await admin.post("/services", json={"port": "x"})).json()
    assert jsonschema_rs.Draft202012Validator(
        {**document["components"]["schemas"]["KongError"]}).is_valid(bad)
    assert document["paths"]["/routes/{key}/service"]["delete"]["responses"].get("405")


async def test_real_rows_conform_to_the_row_schemas(admin: httpx.AsyncClient) -> None:
    document = await contract(admin)
    service = await admin.post("/services", json={"name": "s", "url": "https://a.test/x"})
    route = await admin.post("/services/s/routes", json={"paths": ["/x"], "name": "r"})
    upstream = await admin.post("/upstreams", json={"name": "u"})
    target = await admin.post("/upstreams/u/targets", json={"target": "a.test"})
    plugin = await admin.post("/plugins", json={"name": "acl", "config": {"allow": ["g"]}})
    for name, response in (("services", service), ("routes", route), ("upstreams", upstream),
                           ("targets", target), ("plugins", plugin)):
        assert response.status_code == 201, response.text
        assert validator(document, name).is_valid(response.json()), name
    assert not validator(document, "routes").is_valid({**route.json(), "paths": "/x"})


def test_endpoints_added_later_are_listed_without_being_described() -> None:
    """A path whose Resource has no shape (a future ``/audit_log``) is still in the contract:
    a GET answering a JSON object."""

    async def handler(request: Request) -> Response:
        return json_response(200, {"data": []})

    document = openapi.document([Route("/audit_log", Resource(get=handler))], registry.build())
    get = document["paths"]["/audit_log"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"] == \
        {"type": "object"}

