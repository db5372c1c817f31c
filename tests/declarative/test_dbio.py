"""db_import / db_export / diff on the real databases (SQLite and PostgreSQL): a database
built through the Admin API survives export -> import into an empty database unchanged."""

from __future__ import annotations

import copy
import re
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from gateway import keyring
from gateway.db import tables
from gateway.db.store import Store
from gateway.declarative import dbio, diff, render
from gateway.declarative.parse import parse_text
from gateway.errors import InvalidDeclarativeConfig
from tests.pki import Pki

STAMP = re.compile(r"^(\s*-?\s*)(created_at|updated_at): .*$", re.MULTILINE)


async def build_through_admin(admin: httpx.AsyncClient, pki: Pki) -> None:
    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await admin.post(path, json=body)
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    ca = await post("/ca_certificates", {"cert": pki.read("s003/ca.crt"), "tags": ["pki"]})
    cert = await post("/certificates", {"cert": pki.read("s003/server.crt"),
                                        "key": pki.read("s003/server.key"),
                                        "snis": ["kong-server", "alt.test"]})
    svc = await post("/services", {"name": "secure-api", "url": "https://b.test:8443/api",
                                   "client_certificate": {"id": cert["id"]},
                                   "ca_certificates": [ca["id"]], "tls_verify": True})
    await post(f"/services/{svc['id']}/routes", {"name": "secure-route", "paths": ["/api"],
                                                  "protocols": ["https"]})
    await post("/routes/secure-route/plugins", {"name": "mtls-auth",
                                                "config": {"ca_certificates": [ca["id"]]}})
    await post("/services/secure-api/plugins", {"name": "acl", "config": {"allow": ["a"]}})
    await post("/upstreams", {"name": "up"})
    await post("/upstreams/up/targets", {"target": "10.0.0.1:8443", "weight": 50})
    await post("/consumers", {"username": "trusted-partner", "custom_id": "tp"})
    await post("/consumers/trusted-partner/acls", {"group": "a"})
    await post("/consumers/trusted-partner/mtls-auth", {"subject_name": "CN=api-client"})


def text_of(store: Store, rows: dbio.Rows) -> str:
    return render.dump(dbio.export_document(store, rows))


def without_stamps(text: str) -> str:
    return STAMP.sub(r"\1\2: <stamp>", text)


async def test_export_import_reproduces_the_database(admin: httpx.AsyncClient, store: Store,
                                                     empty: Store, pki: Pki) -> None:
    await build_through_admin(admin, pki)
    before = await dbio.read_rows(store)
    exported = text_of(store, before)
    config = parse_text(empty, exported)
    await dbio.db_import(empty, config)
    after = await dbio.read_rows(empty)
    assert {n: set(r) for n, r in after.items()} == {n: set(r) for n, r in before.items()}
    for name, rows in before.items():
        for ident, row in rows.items():
            assert {k: v for k, v in after[name][ident].items() if k != "updated_at"} == \
                {k: v for k, v in row.items() if k != "updated_at"}, (name, ident)
    again = text_of(empty, after)
    assert without_stamps(again) == without_stamps(exported)
    assert sum(len(r) for r in after.values()) == 13


async def test_export_leaves_keys_out_unless_asked(admin: httpx.AsyncClient, store: Store,
                                                   pki: Pki) -> None:
    await build_through_admin(admin, pki)
    without = text_of(store, await dbio.read_rows(store, secrets=False))
    assert "PRIVATE KEY" not in without
    with_keys = yaml.safe_load(text_of(store, await dbio.read_rows(store)))
    assert with_keys["certificates"][0]["key"] == pki.read("s003/server.key")
    assert with_keys["_format_version"] == "3.0" and with_keys["_transform"] is False
    assert isinstance(with_keys["routes"][0]["service"], str)  # a bare id, as Kong exports


async def test_invalid_file_changes_nothing(admin: httpx.AsyncClient, store: Store,
                                            pki: Pki) -> None:
    await build_through_admin(admin, pki)
    before = text_of(store, await dbio.read_rows(store))
    # valid on its own, refused by the database: the second service's name is taken by a
    # row of another id; the first service must not stay behind
    text = """
_format_version: "3.0"
services:
- name: brand-new
  host: new.test
- name: secure-api
  id: 6f3c35c1-9d1e-4c5c-9a53-8d2b3f0a1b2c
  host: other.test
"""
    with pytest.raises(InvalidDeclarativeConfig) as info:
        await dbio.db_import(store, parse_text(store, text))
    assert info.value.fields == {"services": [None, {"@entity": [
        "UNIQUE violation detected on '{name=\"secure-api\"}'"]}]}
    assert text_of(store, await dbio.read_rows(store)) == before


async def test_diff_lists_exactly_the_changes(admin: httpx.AsyncClient, store: Store,
                                              pki: Pki) -> None:
    await build_through_admin(admin, pki)
    rows = await dbio.read_rows(store)
    doc = dbio.export_document(store, rows)
    plugins = {n: s.config for n, s in store.registry.available.items()}

    def run(document: dict[str, Any]) -> diff.Diff:
        config = parse_text(store, render.dump(document))
        return diff.compare(store.registry.entities, plugins, config, rows)

    assert run(doc).empty
    changed = copy.deepcopy(doc)
    changed["routes"][0]["paths"] = ["/v2"]
    changed["consumers"].append({"username": "newcomer"})
    changed["targets"] = []
    changed["certificates"][0]["key"] = pki.read("s003/client.key")
    changed["certificates"][0]["cert"] = pki.read("s003/client.crt")
    result = run(changed)
    summary = sorted((i.action, i.entity, i.name) for i in result.items)
    assert summary == [("change", "certificates", None), ("change", "routes", "secure-route"),
                       ("create", "consumers", "newcomer"),
                       ("delete", "targets", "10.0.0.1:8443")]
    route = next(i for i in result.items if i.entity == "routes")
    assert route.changes == (diff.Change("paths", ["/api"], ["/v2"]),)
    cert = next(i for i in result.items if i.entity == "certificates")
    assert {c.field for c in cert.changes} == {"cert", "key"}
    key = next(c for c in cert.changes if c.field == "key")
    assert key.old == key.new == "******"
    text = diff.render(result)
    assert "PRIVATE KEY" not in text
    assert text.endswith("1 to create, 2 to change, 1 to delete\n")


async def test_an_invalid_file_is_located_and_imports_nothing(
        admin: httpx.AsyncClient, store: Store, pki: Pki) -> None:
    await build_through_admin(admin, pki)
    before = text_of(store, await dbio.read_rows(store))
    lines = pki.read("s003/server.crt").splitlines()
    lines[4] = "A" * len(lines[4])  # valid base64, broken DER deep inside the certificate
    broken_pem = "\n".join(lines) + "\n"
    document = {
        "_format_version": "3.0",
        "certificates": [{"cert": pki.read("s003/server.crt"),
                          "key": pki.read("s003/server.key")},
                         {"cert": broken_pem, "key": pki.read("s003/server.key")}],
        "services": [{"name": "dup", "host": "a.test", "routes": [
                         {"name": "r", "paths": ["/"], "plugins": [{"name": "nope"}]}]},
                     {"name": "dup", "host": "b.test", "colour": "blue"}],
        "plugins": [{"name": "acl", "service": "ghost", "config": {"allow": ["a"]}}],
    }
    with pytest.raises(InvalidDeclarativeConfig) as info:
        await dbio.db_import(store, parse_text(store, render.dump(document)))
    fields = info.value.fields
    assert fields["certificates"][0] is None and "cert" in str(fields["certificates"][1])
    assert fields["services"][0] == {"routes": [{"plugins": [{"name": (
        "plugin 'nope' not enabled; add it to the 'plugins' configuration property")}]}]}
    assert fields["services"][1] == {
        "@entity": ["uniqueness violation: 'services' entity with name set to 'dup' "
                    "already declared"],
        "colour": "unknown field"}
    assert list(fields["plugins"].values()) == [
        ["invalid reference 'service: ghost' (no such entry in 'services')"]]
    assert text_of(store, await dbio.read_rows(store)) == before


async def test_keys_are_sealed_on_import_and_opened_on_export(empty: Store, pki: Pki) -> None:
    empty.keyring = keyring.parse(keyring.generate("k1"), "test")
    text = render.dump({"_format_version": "3.0", "certificates": [
        {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key"),
         "snis": ["kong-server"]}]})
    await dbio.db_import(empty, parse_text(empty, text))
    async with empty.read() as conn:
        stored = (await conn.execute(sa.select(tables.table("certificates").c.key))).scalar()
    assert keyring.is_sealed(stored) and "PRIVATE KEY" not in str(stored)
    rows = await dbio.read_rows(empty)
    (cert,) = rows["certificates"].values()
    assert cert["key"] == pki.read("s003/server.key")
    assert "key" not in next(iter((await dbio.read_rows(empty, secrets=False))
                                  ["certificates"].values()))
