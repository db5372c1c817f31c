"""services: Kong's fields, url shorthand, errors and method semantics."""

from __future__ import annotations

import uuid

import httpx

SCHEMA_VIOLATION = {"code": 2, "name": "schema violation"}


async def test_create_with_url_shorthand_form(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", data={"name": "secure-service",
                                            "url": "https://mockbin.org"})
    assert r.status_code == 201
    body = r.json()
    assert body["protocol"] == "https" and body["host"] == "mockbin.org"
    assert body["port"] == 443 and body["path"] is None
    assert "url" not in body
    # every field is listed, unset ones as null, defaults filled
    assert body["retries"] == 5 and body["connect_timeout"] == 60000
    assert body["tags"] is None and body["client_certificate"] is None
    assert body["tls_verify"] is None and body["enabled"] is True
    assert isinstance(body["created_at"], int) and uuid.UUID(body["id"])
    assert r.headers["content-type"] == "application/json; charset=utf-8"


async def test_defaults_without_url(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", json={"host": "example.com", "protocol": "https"})
    assert r.status_code == 201
    assert r.json()["port"] == 80  # Kong: 80 even for https unless `url` is used


async def test_host_required_and_messages(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", json={})
    assert r.status_code == 400
    assert r.json() == {**SCHEMA_VIOLATION,
                        "message": "schema violation (host: required field missing)",
                        "fields": {"host": "required field missing"}}


async def test_conditional_tls_fields(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", json={"host": "h", "protocol": "http",
                                            "client_certificate": {"id": str(uuid.uuid4())}})
    assert r.status_code == 400
    assert r.json()["message"] == ("2 schema violations (failed conditional validation given "
                                   "value of field 'protocol'; client_certificate: value "
                                   "must be null)")
    assert r.json()["fields"] == {
        "@entity": ["failed conditional validation given value of field 'protocol'"],
        "client_certificate": "value must be null"}


async def test_invalid_name(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/services", json={"name": "my service", "host": "h"})
    assert r.status_code == 400
    assert r.json()["fields"] == {"name": "invalid value 'my service': the only accepted ascii "
                                          "characters are alphanumerics or ., -, _, and ~"}


async def test_unique_name_409(admin: httpx.AsyncClient) -> None:
    assert (await admin.post("/services", json={"name": "dup", "host": "h"})).status_code == 201
    r = await admin.post("/services", json={"name": "dup", "host": "h"})
    assert r.status_code == 409
    assert r.json() == {"code": 5, "name": "unique constraint violation",
                        "message": "UNIQUE violation detected on '{name=\"dup\"}'",
                        "fields": {"name": "dup"}}


async def test_primary_key_violation(admin: httpx.AsyncClient) -> None:
    ident = str(uuid.uuid4())
    assert (await admin.post("/services", json={"id": ident, "host": "h"})).status_code == 201
    r = await admin.post("/services", json={"id": ident, "host": "h"})
    assert r.status_code == 400
    assert r.json()["code"] == 3
    assert r.json()["message"] == f"primary key violation on key '{{id=\"{ident}\"}}'"


async def test_get_by_id_and_name(admin: httpx.AsyncClient) -> None:
    created = (await admin.post("/services", json={"name": "s1", "host": "h"})).json()
    assert (await admin.get(f"/services/{created['id']}")).json() == created
    assert (await admin.get("/services/s1")).json() == created
    assert (await admin.get(f"/services/{created['id'].upper()}")).json() == created
    r = await admin.get("/services/nope")
    assert r.status_code == 404 and r.json() == {"message": "Not found"}


async def test_invalid_endpoint_key_is_400(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/services/a b")
    assert r.status_code == 400
    assert r.json()["code"] == 10 and r.json()["name"] == "invalid unique name"


async def test_patch(admin: httpx.AsyncClient) -> None:
    created = (await admin.post("/services", json={"name": "s1", "host": "h"})).json()
    r = await admin.patch("/services/s1", data={"retries": "3", "path": "/v1"})
    assert r.status_code == 200
    assert r.json()["retries"] == 3 and r.json()["path"] == "/v1"
    assert r.json()["host"] == "h" and r.json()["id"] == created["id"]
    r = await admin.patch("/services/s1", data={"path": ""})  # empty form value clears
    assert r.json()["path"] is None


async def test_patch_missing_is_404_with_full_error(admin: httpx.AsyncClient) -> None:
    ident = str(uuid.uuid4())
    r = await admin.patch(f"/services/{ident}", json={"retries": 1})
    assert r.status_code == 404
    assert r.json() == {"code": 6, "name": "not found",
                        "message": f"could not find the entity with primary key "
                                   f"'{{id=\"{ident}\"}}'", "fields": {"id": ident}}
    r = await admin.patch("/services/ghost", json={"retries": 1})
    assert r.json()["message"] == "could not find the entity with '{name=\"ghost\"}'"


async def test_put_creates_and_replaces_with_200(admin: httpx.AsyncClient) -> None:
    r = await admin.put("/services/by-put", json={"host": "h1", "retries": 1})
    assert r.status_code == 200
    first = r.json()
    assert first["name"] == "by-put" and first["retries"] == 1
    r = await admin.put("/services/by-put", json={"host": "h2", "name": "ignored"})
    assert r.status_code == 200
    second = r.json()
    assert second["id"] == first["id"] and second["name"] == "by-put"
    assert second["host"] == "h2" and second["retries"] == 5  # omitted fields reset
    ident = str(uuid.uuid4())
    r = await admin.put(f"/services/{ident}", json={"host": "h3", "id": str(uuid.uuid4())})
    assert r.status_code == 200 and r.json()["id"] == ident  # the URL wins


async def test_delete_is_204_even_when_missing(admin: httpx.AsyncClient) -> None:
    await admin.post("/services", json={"name": "gone", "host": "h"})
    assert (await admin.delete("/services/gone")).status_code == 204
    assert (await admin.get("/services/gone")).status_code == 404
    assert (await admin.delete("/services/gone")).status_code == 204


async def test_delete_service_with_routes_is_refused(admin: httpx.AsyncClient) -> None:
    await admin.post("/services", json={"name": "s", "host": "h"})
    await admin.post("/services/s/routes", json={"paths": ["/x"]})
    r = await admin.delete("/services/s")
    assert r.status_code == 400
    assert r.json() == {"code": 4, "name": "foreign key violation",
                        "message": "an existing 'routes' entity references this 'services' "
                                   "entity", "fields": {"@referenced_by": "routes"}}
    assert (await admin.get("/services/s")).status_code == 200


async def test_route_service_parent_endpoint(admin: httpx.AsyncClient) -> None:
    await admin.post("/services", json={"name": "s", "host": "h"})
    route = (await admin.post("/services/s/routes", json={"name": "r", "paths": ["/x"]})).json()
    r = await admin.get("/routes/r/service")
    assert r.status_code == 200 and r.json()["name"] == "s"
    r = await admin.patch("/routes/r/service", json={"retries": 2})
    assert r.status_code == 200 and r.json()["retries"] == 2
    r = await admin.delete(f"/routes/{route['id']}/service")
    assert r.status_code == 405 and r.json() == {"message": "Method not allowed"}
    orphan = (await admin.post("/routes", json={"paths": ["/o"]})).json()
    assert (await admin.get(f"/routes/{orphan['id']}/service")).status_code == 404


async def test_methods_options_head_and_slash(admin: httpx.AsyncClient) -> None:
    r = await admin.put("/services", json={})
    assert r.status_code == 405 and r.json() == {"message": "Method not allowed"}
    r = await admin.options("/services")
    assert r.status_code == 204
    assert r.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert r.headers["access-control-allow-methods"] == "GET, HEAD, OPTIONS, POST"
    r = await admin.options("/services/x")
    assert r.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
    r = await admin.head("/services")
    assert r.status_code == 200 and r.content == b""
    r = await admin.get("/services/")
    assert r.status_code == 200 and r.json() == {"data": [], "next": None}
    r = await admin.get("/no/such/path")
    assert r.status_code == 404 and r.json() == {"message": "Not found"}
