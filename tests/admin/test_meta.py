"""GET /, /status, /endpoints, /schemas and Kong's response headers."""

from __future__ import annotations

import httpx


async def test_root(admin: httpx.AsyncClient) -> None:
    await admin.post("/plugins", json={"name": "acl", "config": {"allow": ["a"]}})
    body = (await admin.get("/")).json()
    assert body["tagline"] == "Welcome to kong" and body["version"] == "3.9.0"
    assert body["ramparts"]["version"]
    assert body["plugins"]["available_on_server"]["mtls-auth"]["priority"] == 1600
    assert body["plugins"]["enabled_in_cluster"] == ["acl"]
    config = body["configuration"]
    assert config["admin_listen"] == ["127.0.0.1:8001"]
    assert config["proxy_listen"] == ["0.0.0.0:8000", "0.0.0.0:8443 ssl"]
    assert set(body) >= {"hostname", "node_id", "pids", "timers"}
    assert (await admin.post("/", json={})).status_code == 405


async def test_status_counts_and_database(admin: httpx.AsyncClient) -> None:
    first = (await admin.get("/status")).json()
    assert first["database"] == {"reachable": True}
    await admin.post("/consumers", json={"username": "x"})
    second = (await admin.get("/status")).json()
    assert second["server"]["total_requests"] == first["server"]["total_requests"] + 2
    assert second["configuration_version"] > first["configuration_version"]


async def test_headers(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/services", headers={"origin": "https://ui.example"})
    assert "access-control-allow-origin" not in r.headers  # CORS is off unless configured
    assert r.headers["server"].startswith("ramparts/")
    assert int(r.headers["x-kong-admin-latency"]) >= 0
    assert "access-control-allow-origin" not in (await admin.get("/services")).headers
    r = await admin.options("/services", headers={"access-control-request-headers": "X-A"})
    assert r.headers["access-control-allow-headers"] == "X-A"


async def test_endpoints_and_schemas(admin: httpx.AsyncClient) -> None:
    paths = (await admin.get("/endpoints")).json()["data"]
    for path in ("/services", "/services/{key}", "/services/{pkey}/routes",
                 "/routes/{key}/service", "/certificates/{pkey}/snis",
                 "/consumers/{pkey}/mtls-auth", "/upstreams/{pkey}/targets/{key}"):
        assert path in paths
    schema = (await admin.get("/schemas/services")).json()
    fields = {next(iter(f)): next(iter(f.values())) for f in schema["fields"]}
    assert fields["port"] == {"type": "integer", "required": True, "default": 80,
                              "between": [0, 65535]}
    assert fields["client_certificate"]["reference"] == "certificates"
    assert (await admin.get("/schemas/nope")).json() == {"message": "No entity named 'nope'"}
    r = await admin.post("/schemas/services/validate", json={"host": "h"})
    assert r.status_code == 200 and r.json() == {"message": "schema validation successful"}
    r = await admin.post("/schemas/services/validate", json={})
    assert r.status_code == 400 and r.json()["code"] == 2
    r = await admin.post("/schemas/plugins/validate", json={"name": "mtls-auth"})
    assert r.json()["fields"] == {"config": {"ca_certificates": "required field missing"}}
    assert (await admin.get("/services")).json()["data"] == []  # validation wrote nothing
