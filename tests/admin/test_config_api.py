"""``/config`` and the read-only Admin API of DB-less mode (in process, on the private
SQLite database DB-less mode uses); ``/config`` on a node with a database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import yaml

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry
from gateway.declarative import dbless
from gateway.settings.load import load
from tests.pki import Pki
from tests.seeds import SEED_003_CA_ID, SEED_003_KONG_YML

ONE = {"_format_version": "3.0", "services": [
    {"name": "svc", "url": "http://one.test", "routes": [{"name": "r", "paths": ["/one"]}]}]}
TWO_YAML = """
_format_version: "3.0"
services:
- name: svc2
  url: http://two.test
"""


@pytest_asyncio.fixture
async def dbless_node() -> AsyncIterator[tuple[httpx.AsyncClient, dbless.DblessStore]]:
    settings = load(env={"RAMPARTS_DATABASE": "off"})
    store = await dbless.open_store(settings, registry.build(), None)
    app = create_app(store, NodeInfo(settings=settings, node_id=str(uuid.uuid4())))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost:8001") as client:
            yield client, store
    finally:
        await store.close()


@pytest.fixture
def off(dbless_node: tuple[httpx.AsyncClient, dbless.DblessStore]) -> httpx.AsyncClient:
    return dbless_node[0]


async def names(client: httpx.AsyncClient) -> list[str]:
    r = await client.get("/services")
    assert r.status_code == 200
    return sorted(s["name"] for s in r.json()["data"])


async def test_post_config_replaces_everything(off: httpx.AsyncClient) -> None:
    r = await off.post("/config", json=ONE)
    assert r.status_code == 201, r.text
    body = r.json()
    assert [s["name"] for s in body["services"].values()] == ["svc"]
    assert [x["name"] for x in body["routes"].values()] == ["r"]
    assert await names(off) == ["svc"]
    r = await off.post("/config", data={"config": TWO_YAML})  # form field, as curl -F
    assert r.status_code == 201, r.text
    assert await names(off) == ["svc2"]
    assert (await off.get("/routes")).json()["data"] == []
    r = await off.post("/config", content=yaml.safe_dump(ONE).encode(),
                       headers={"Content-Type": "application/x-yaml"})  # a raw YAML body
    assert r.status_code == 201 and await names(off) == ["svc"]
    exported = yaml.safe_load((await off.get("/config")).json()["config"])
    assert [s["name"] for s in exported["services"]] == ["svc"]


async def test_check_hash_answers_304_when_unchanged(off: httpx.AsyncClient) -> None:
    assert (await off.post("/config?check_hash=1", json=ONE)).status_code == 201
    assert (await off.post("/config?check_hash=1", json=ONE)).status_code == 304
    assert (await off.post("/config", json=ONE)).status_code == 201  # no check: reloads


async def test_bad_config_leaves_the_running_one(off: httpx.AsyncClient) -> None:
    assert (await off.post("/config", json=ONE)).status_code == 201
    bad = {"_format_version": "3.0", "services": [{"name": "x", "host": "h", "port": 0.5}]}
    r = await off.post("/config", json=bad)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 14 and body["name"] == "invalid declarative configuration"
    assert body["fields"] == {"services": [{"port": "expected an integer"}]}
    assert "flattened_errors" not in body
    r = await off.post("/config?flatten_errors=1", json=bad)
    assert r.json()["fields"] == {}  # Kong: the errors are in the flat list only
    flat = r.json()["flattened_errors"]
    assert flat[0]["entity_name"] == "x" and flat[0]["errors"] == [
        {"type": "field", "field": "port", "message": "expected an integer"}]
    assert await names(off) == ["svc"]
    r = await off.post("/config", json={})
    assert (r.status_code, r.json()) == (400, {"message": "expected a declarative configuration"})


async def test_writes_elsewhere_are_refused_with_405(off: httpx.AsyncClient) -> None:
    assert (await off.post("/config", json=ONE)).status_code == 201
    some_id = str(uuid.uuid4())
    cases = [("POST", "/services", "create 'services' entities"),
             ("PUT", "/services/svc", "create or update 'services' entities by 'name'"),
             ("PATCH", "/routes/r", "update 'routes' entities by 'name'"),
             ("PATCH", f"/routes/{some_id}", "update 'routes' entities"),
             ("DELETE", f"/services/{some_id}", "remove 'services' entities"),
             ("POST", "/services/svc/routes", "create 'routes' entities"),
             ("POST", "/consumers/c/mtls-auth", "create 'mtls_auth_credentials' entities")]
    for method, path, what in cases:
        r = await off.request(method, path, json={"name": "x"})
        assert r.status_code == 405, (method, path)
        assert r.json() == {"code": 12, "name": "operation unsupported",
                            "message": f"cannot {what} when not using a database"}
    assert await names(off) == ["svc"]
    r = await off.post("/schemas/services/validate", json={"host": "a.test"})
    assert r.status_code == 200  # validation writes nothing


async def test_config_needs_dbless(admin: httpx.AsyncClient) -> None:
    for method in ("GET", "POST"):
        r = await admin.request(method, "/config", json=ONE)
        assert (r.status_code, r.json()) == (400, {"message": (
            "this endpoint is only available when Kong is configured to not use a database")})
    assert (await admin.get("/services")).json()["data"] == []


async def test_status_reports_the_configuration_hash(off: httpx.AsyncClient) -> None:
    status = (await off.get("/status")).json()
    assert "database" not in status and status["configuration_hash"] == "0" * 32
    assert (await off.post("/config", json=ONE)).status_code == 201
    first = (await off.get("/status")).json()["configuration_hash"]
    assert len(first) == 32 and first != "0" * 32
    assert (await off.post("/config", data={"config": TWO_YAML})).status_code == 201
    assert (await off.get("/status")).json()["configuration_hash"] not in (first, "0" * 32)


async def test_a_second_load_while_one_runs_is_429(
        dbless_node: tuple[httpx.AsyncClient, dbless.DblessStore]) -> None:
    off, store = dbless_node
    async with store.loading:
        r = await off.post("/config", json=ONE)
    assert (r.status_code, r.json()) == (429, {"message": "Currently loading previous "
                                                          "configuration"})
    assert r.headers["retry-after"] == "60"
    assert (await off.post("/config", json=ONE)).status_code == 201


async def test_seed_003_example_loads_with_its_ca(off: httpx.AsyncClient, pki: Pki) -> None:
    """Seed 003's kong.yml as written (format 2.1), with the CA it names and its consumer."""
    ca_id = SEED_003_CA_ID
    indented = "\n".join("    " + line for line in pki.read("s003/ca.crt").splitlines())
    text = SEED_003_KONG_YML + f"""ca_certificates:
- id: {ca_id}
  cert: |
{indented}
consumers:
- username: trusted-partner
  mtls_auth_credentials:
  - subject_name: CN=api-client
"""
    r = await off.post("/config", files={"config": ("kong.yml", text.encode())})
    assert r.status_code == 201, r.text
    plugin = (await off.get("/routes/secure-route/plugins")).json()["data"][0]
    assert plugin["name"] == "mtls-auth" and plugin["config"]["ca_certificates"] == [ca_id]
    creds = (await off.get("/consumers/trusted-partner/mtls-auth")).json()["data"]
    assert [c["subject_name"] for c in creds] == ["CN=api-client"]
    assert (await off.get(f"/ca_certificates/{ca_id}")).status_code == 200
