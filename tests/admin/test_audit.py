"""The audit log: one row per Admin API write, refused ones included, never any key material;
``GET /audit_log`` filtered and paginated, newest first; retention. Both databases."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from starlette.types import ASGIApp

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry
from gateway.db import admin_tokens, migrate, tables
from gateway.db import audit as audit_log
from gateway.db.store import Store
from gateway.settings.load import SettingsError, load
from tests.conftest import wipe
from tests.pki import Pki

DAY = 86400


async def entries(admin: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    r = await admin.get(f"/audit_log?size=1000{'&' + query if query else ''}")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def raw_rows(store: Store) -> str:
    """Every audit row as stored, every column, as one text."""
    async with store.read() as conn:
        rows = (await conn.execute(sa.select(tables.audit_log))).all()
    return json.dumps([[str(v) for v in row] for row in rows])


def client_for(store: Store, env: dict[str, str] | None = None,
               wrap: Any = None) -> httpx.AsyncClient:
    node = NodeInfo(settings=load(env=env or {}), node_id=str(uuid.uuid4()))
    app: ASGIApp = create_app(store, node)
    transport = httpx.ASGITransport(app=wrap(app) if wrap else app)
    return httpx.AsyncClient(transport=transport, base_url="http://localhost:8001")


def assert_no_key(text: str, *keys: str) -> None:
    assert "PRIVATE KEY" not in text.upper()
    for key in keys:
        body = "".join(key.strip().splitlines()[1:-1])  # the base64, without the PEM lines
        assert key.strip() not in text and body[:64] not in text


async def test_certificate_create_update_delete_leave_one_row_each_without_key(
        admin: httpx.AsyncClient, store: Store, pki: Pki) -> None:
    cert, key = pki.read("s003/server.crt"), pki.read("s003/server.key")
    r = await admin.post("/certificates", json={"cert": cert, "key": key, "snis": ["a.test"]})
    assert r.status_code == 201, r.text
    cert_id = r.json()["id"]
    r = await admin.patch(f"/certificates/{cert_id}", json={"key": key, "tags": ["t1"]})
    assert r.status_code == 200, r.text
    r = await admin.delete("/certificates/a.test")  # by SNI name: the id is still recorded
    assert r.status_code == 204

    rows = await entries(admin)
    assert [(e["operation"], e["method"], e["status"]) for e in rows] == [
        ("delete", "DELETE", 204), ("update", "PATCH", 200), ("create", "POST", 201)]
    for row in rows:
        assert row["entity"] == "certificates" and row["entity_id"] == cert_id
        assert row["actor"] == "peer:127.0.0.1" and row["error"] is None
    deleted, updated, created = rows
    assert created["fields"]["key"] == "******" and created["fields"]["snis"] == ["a.test"]
    assert updated["fields"] == {"key": "******", "tags": ["t1"]}
    assert deleted["fields"] is None and deleted["path"] == "/certificates/a.test"
    assert created["id"] < updated["id"] < deleted["id"]
    assert abs(created["created_at"] - time.time()) < 60
    assert_no_key((await admin.get("/audit_log")).text, key)
    assert_no_key(await raw_rows(store), key)


async def test_form_bodies_and_alt_keys_are_masked(admin: httpx.AsyncClient, store: Store,
                                                   pki: Pki) -> None:
    files = {"cert": ("rsa.crt", pki.read("s003/rsa.crt")),
             "key": ("rsa.key", pki.read("s003/rsa.key")),
             "cert_alt": ("ec.crt", pki.read("s003/ec.crt")),
             "key_alt": ("ec.key", pki.read("s003/ec.key"))}
    r = await admin.post("/certificates", files=files, data={"snis[]": "form.test"})
    assert r.status_code == 201, r.text
    # a key pasted where no key belongs is caught by its PEM text
    r = await admin.post("/services", json={"name": "s", "host": "h",
                                            "tags": [pki.read("s003/server.key")]})
    assert r.status_code == 400
    create_cert = (await entries(admin, "entity=certificates"))[0]
    assert create_cert["fields"]["key"] == create_cert["fields"]["key_alt"] == "******"
    assert create_cert["fields"]["snis"] == ["form.test"]
    assert (await entries(admin, "entity=services"))[0]["fields"]["tags"] == ["******"]
    keys = [pki.read(k) for k in ("s003/rsa.key", "s003/ec.key", "s003/server.key")]
    assert_no_key((await admin.get("/audit_log")).text, *keys)
    assert_no_key(await raw_rows(store), *keys)


async def test_rejected_write_is_audited_and_changes_nothing(
        admin: httpx.AsyncClient, store: Store, pki: Pki) -> None:
    version = await store.config_version()
    key = pki.read("s003/client.key")
    r = await admin.post("/certificates", json={"cert": pki.read("s003/server.crt"),
                                                "key": key, "snis": ["mismatch.test"]})
    assert r.status_code == 400
    r = await admin.post("/services", content=b"{not json",
                         headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = await admin.post(f"/services/{uuid.uuid4()}/routes", json={"paths": ["/x"]})
    assert r.status_code == 404
    r = await admin.post("/services", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    ident = str(uuid.uuid4())
    r = await admin.put(f"/services/{ident}", json={"port": 0})
    assert r.status_code == 400

    rows = await entries(admin)
    assert rows[0]["entity_id"] == ident  # the id the refused PUT would have written
    assert [(e["entity"], e["operation"], e["status"], e["error"]) for e in rows] == [
        ("services", "upsert", 400, "schema violation"),
        ("services", "create", 415, "Unsupported Media Type"),
        ("routes", "create", 404, "Not found"),
        ("services", "create", 400, "Cannot parse JSON body"),
        ("certificates", "create", 400, "schema violation")]
    assert rows[2]["entity_id"] is None  # the parent's id in the path is not the route's
    assert rows[-1]["fields"]["key"] == "******" and rows[-1]["entity_id"] is None
    assert (await admin.get("/certificates")).json()["data"] == []
    assert (await admin.get("/snis")).json()["data"] == []
    assert (await admin.get("/services")).json()["data"] == []
    assert await store.config_version() == version  # audit rows are not configuration
    assert_no_key(await raw_rows(store), key)


async def test_audit_rows_never_bump_the_configuration_version(
        admin: httpx.AsyncClient, store: Store) -> None:
    version = await store.config_version()
    assert (await admin.post("/services", json={"name": "s", "host": "h"})).status_code == 201
    assert await store.config_version() == version + 1  # the write's bump, and only that one
    assert len(await entries(admin)) == 1


async def test_reads_and_validation_are_not_audited(admin: httpx.AsyncClient) -> None:
    await admin.get("/services")
    await admin.options("/services")
    r = await admin.post("/schemas/services/validate", json={"host": "h"})
    assert r.status_code == 200
    assert await entries(admin) == []


@pytest.mark.parametrize(("method", "path", "body", "entity", "operation"), [
    ("PUT", "/services/s1", {"host": "h"}, "services", "upsert"),
    ("PUT", "/routes/r1/service", {"host": "h2"}, "services", "upsert"),
    ("PATCH", "/services/s0", {"port": 81}, "services", "update"),
    ("POST", "/services/s0/routes", {"paths": ["/p"]}, "routes", "create"),
    ("POST", "/services/{s0}/routes", {"paths": ["/q"]}, "routes", "create"),
    ("PUT", "/upstreams/u/targets/t.test:80", {"weight": 5}, "targets", "update"),
    ("PUT", "/upstreams/u/targets/t.test:80/unhealthy", None, "targets", "update"),
    ("DELETE", "/upstreams/u/targets/t.test:80", None, "targets", "delete"),
    ("DELETE", "/services/s0/routes/r1", None, "routes", "delete"),
])
async def test_every_write_endpoint_names_its_entity_and_row(
        admin: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None,
        entity: str, operation: str) -> None:
    s0 = (await admin.post("/services", json={"name": "s0", "host": "h"})).json()
    await admin.post("/services/s0/routes", json={"name": "r1", "paths": ["/r"]})
    await admin.post("/upstreams", json={"name": "u"})
    await admin.post("/upstreams/u/targets", json={"target": "t.test:80"})
    path = path.format(s0=s0["id"])
    r = await admin.request(method, path, json=body)
    assert r.status_code < 300, r.text
    last = (await entries(admin))[0]
    assert (last["entity"], last["operation"], last["path"]) == (entity, operation, path)
    if r.status_code != 204:
        assert last["entity_id"] == r.json()["id"]
    else:
        assert uuid.UUID(last["entity_id"])
    if path == "/routes/r1/service":
        assert last["entity_id"] == s0["id"]


async def seed(admin: httpx.AsyncClient) -> None:
    for i in range(5):
        assert (await admin.post("/services", json={"name": f"s{i}", "host": "h"})
                ).status_code == 201
    await admin.delete("/services/s4")
    await admin.post("/consumers", json={"username": "c"})


async def test_filters(admin: httpx.AsyncClient, store: Store) -> None:
    await seed(admin)
    assert len(await entries(admin)) == 7
    assert len(await entries(admin, "entity=services")) == 6
    assert [e["path"] for e in await entries(admin, "operation=delete")] == ["/services/s4"]
    assert len(await entries(admin, "entity=services&operation=create")) == 5
    assert len(await entries(admin, "actor=peer:127.0.0.1")) == 7
    assert await entries(admin, "actor=token:nobody") == []
    # time filters: move one row a day back
    first = (await entries(admin))[-1]
    async with store.write(config=False) as conn:
        t = tables.audit_log
        await conn.execute(sa.update(t).where(t.c.id == first["id"])
                           .values(created_at=first["created_at"] - DAY))
    now = int(time.time())
    old = await entries(admin, f"until={now - DAY // 2}")
    assert [e["id"] for e in old] == [first["id"]]
    assert len(await entries(admin, f"since={now - DAY // 2}")) == 6
    assert len(await entries(admin, f"since={now - 2 * DAY}&until={now + 60}")) == 7


@pytest.mark.parametrize(("query", "options"), [
    ("since=yesterday", {"since": "expected an integer (epoch seconds)"}),
    ("until=1.5", {"until": "expected an integer (epoch seconds)"}),
    ("operation=read", {"operation": "expected one of: create, upsert, update, delete"}),
    ("entity=&actor=", {"entity": "cannot be empty", "actor": "cannot be empty"}),
    ("entity=%00", {"entity": "must not contain a NUL character"}),
])
async def test_bad_filters_are_kong_invalid_options(admin: httpx.AsyncClient, query: str,
                                                    options: dict[str, str]) -> None:
    r = await admin.get(f"/audit_log?{query}")
    assert r.status_code == 400
    assert r.json()["code"] == 11 and r.json()["name"] == "invalid options"
    assert r.json()["options"] == options


async def test_pages_newest_first_and_keep_filters(admin: httpx.AsyncClient) -> None:
    await seed(admin)
    everything = [e["id"] for e in await entries(admin, "entity=services")]
    assert everything == sorted(everything, reverse=True)
    seen: list[int] = []
    url: str | None = "/audit_log?size=2&entity=services"
    pages = 0
    while url and pages < 10:
        body = (await admin.get(url)).json()
        seen.extend(e["id"] for e in body["data"])
        if body["next"] is not None:
            query = parse_qs(urlsplit(body["next"]).query)
            assert query["offset"] == [body["offset"]]
            assert query["size"] == ["2"] and query["entity"] == ["services"]
        else:
            assert "offset" not in body
        url = body["next"]
        pages += 1
    assert seen == everything and pages == 3
    r = await admin.get("/audit_log?offset=bm9wZQ")
    assert r.status_code == 400 and r.json()["name"] == "invalid offset"
    r = await admin.get("/audit_log?size=0")
    assert r.status_code == 400 and r.json()["name"] == "invalid size"


async def test_actor_comes_from_the_authentication_layer(store: Store) -> None:
    """The auth layer names the caller; refused writes are attributed too."""
    await wipe(store)
    ci = await admin_tokens.create(store, "ci", "admin")
    viewer = await admin_tokens.create(store, "viewer", "read-only")
    async with client_for(store) as client:
        r = await client.post("/consumers", json={"username": "a"},
                              headers={"Kong-Admin-Token": ci})
        assert r.status_code == 201
        r = await client.post("/consumers", json={"username": "b"},
                              headers={"Authorization": f"Bearer {viewer}"})
        assert r.status_code == 403
        r = await client.post("/consumers", json={"username": "c"},
                              headers={"Kong-Admin-Token": "forged"})
        assert r.status_code == 401
        got = [(e["actor"], e["status"]) for e in await entries(client)]
        assert got == [("peer:127.0.0.1", 401), ("token:viewer", 403), ("token:ci", 201)]
        assert len(await entries(client, "actor=token:ci")) == 1


async def old_entries(store: Store, ages_days: list[float]) -> None:
    now = int(time.time())
    for age in ages_days:
        await audit_log.append(store, audit_log.Entry(
            created_at=now - int(age * DAY), actor="peer:old", entity="services",
            entity_id=None, operation="create", fields=None, method="POST",
            path="/services", status=201, error=None))


async def test_retention_prunes_on_write(admin: httpx.AsyncClient, store: Store) -> None:
    await old_entries(store, [45, 31, 29, 1])
    assert (await admin.post("/consumers", json={"username": "a"})).status_code == 201
    ages = [e["created_at"] for e in await entries(admin)]
    assert len(ages) == 3 and min(ages) > time.time() - 30 * DAY  # default: 30 days


async def test_retention_zero_keeps_everything(store: Store) -> None:
    await wipe(store)
    await old_entries(store, [3650, 400])
    async with client_for(store, env={"RAMPARTS_AUDIT_LOG_RETENTION": "0"}) as client:
        assert (await client.post("/consumers", json={"username": "a"})).status_code == 201
        assert len(await entries(client)) == 3


async def test_background_prune_removes_every_expired_row(store: Store) -> None:
    await wipe(store)
    now = int(time.time())
    rows = [{"created_at": now - 40 * DAY, "actor": "peer:old", "operation": "create",
             "method": "POST", "path": "/services", "status": 201}] * \
        (2 * audit_log.PRUNE_BATCH + 7)
    async with store.write(config=False) as conn:
        await conn.execute(sa.insert(tables.audit_log), rows)
    await old_entries(store, [2])
    assert await audit_log.prune(store, now, retention_days=30) == len(rows)
    assert await audit_log.prune(store, now, retention_days=0) == 0
    async with store.read() as conn:
        left = (await conn.execute(sa.select(sa.func.count()).select_from(tables.audit_log))
                ).scalar_one()
    assert left == 1


@pytest_asyncio.fixture
async def broken_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A database whose audit_log table is gone: every audit insert fails."""
    st = Store(f"sqlite:///{tmp_path}/broken.db", registry.build())
    await migrate.upgrade(st.engine)
    async with st.engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE audit_log"))
    yield st
    await st.close()


async def test_an_audit_failure_never_fails_the_write(
        broken_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    async with client_for(broken_store) as client:
        with caplog.at_level(logging.ERROR, logger="ramparts.admin"):
            r = await client.post("/services", json={"name": "s", "host": "h"})
        assert r.status_code == 201, r.text
        assert (await client.get("/services/s")).status_code == 200
    assert any("audit log: cannot record POST /services" in m for m in caplog.messages)


@pytest.mark.parametrize("value", ["-1", "36501", "soon"])
def test_retention_setting_is_checked(value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(env={"RAMPARTS_AUDIT_LOG_RETENTION": value})
    assert all(p.startswith("audit_log_retention: ") for p in info.value.problems)
