"""Keys encrypted at rest, on both databases: what the database holds (raw SELECTs), what the
Admin API answers, rotation, a node without the right key, tampering, write-only keys."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any

import httpx
import pytest
import sqlalchemy as sa

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry
from gateway.db import tables
from gateway.db.load import load_all
from gateway.db.rotate import rotate
from gateway.db.store import Store
from gateway.keyring import Keyring, parse
from gateway.plugins.base import PluginSpec
from gateway.schema.fields import Secret
from gateway.settings.load import load
from tests.conftest import wipe
from tests.pki import Pki


def ring(*ids: str) -> Keyring:
    """Deterministic keys per id, so two stores with the same id share the key."""
    return parse(",".join(f"{i}:{base64.b64encode(i.encode().ljust(32, b'.')).decode()}"
                          for i in ids), "test")


@asynccontextmanager
async def sealed_store(url: str, keys: Keyring | None,
                       reg: registry.Registry | None = None) -> AsyncIterator[Store]:
    st = Store(url, reg or registry.build(), keyring=keys)
    try:
        yield st
    finally:
        await st.close()


def client(st: Store, **env: str) -> httpx.AsyncClient:
    node = NodeInfo(settings=load(env=env), node_id=str(uuid.uuid4()))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(st, node)),
                             base_url="http://localhost:8001")


async def raw(st: Store, table: str, *columns: str) -> dict[str, tuple[Any, ...]]:
    """What the database really holds, bypassing every DAO."""
    cols = ", ".join(columns)
    async with st.engine.connect() as conn:
        rows = (await conn.execute(sa.text(f"SELECT id, {cols} FROM {table}"))).all()
    return {str(uuid.UUID(str(r[0]))): tuple(r[1:]) for r in rows}  # SQLite: 32 hex digits


async def _post_pair(api: httpx.AsyncClient, pki: Pki, name: str) -> dict[str, Any]:
    r = await api.post("/certificates", json={
        "cert": pki.read("s003/rsa.crt"), "key": pki.read("s003/rsa.key"),
        "cert_alt": pki.read("s003/ec.crt"), "key_alt": pki.read("s003/ec.key"),
        "snis": [name]})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_keys_are_ciphertext_in_the_database_and_pem_over_the_api(
        store: Store, pki: Pki) -> None:
    await wipe(store)
    async with sealed_store(store.url, ring("k1")) as st, client(st) as api:
        created = await _post_pair(api, pki, "sealed.test")
        assert created["key"] == pki.read("s003/rsa.key")  # Kong answers with the PEM
        (key, key_alt, cert), = (await raw(st, "certificates", "key", "key_alt", "cert")
                                 ).values()
        for value in (key, key_alt):
            assert value.startswith("$ramparts$v1$k1$") and "PRIVATE KEY" not in value
        assert cert == pki.read("s003/rsa.crt")  # certificates are public: left as they are
        for path in (f"/certificates/{created['id']}", "/certificates/sealed.test"):
            got = (await api.get(path)).json()
            assert (got["key"], got["key_alt"]) == (pki.read("s003/rsa.key"),
                                                    pki.read("s003/ec.key"))
        listed = (await api.get("/certificates")).json()["data"]
        assert listed[0]["key"] == pki.read("s003/rsa.key")
        # a PATCH that leaves the key alone re-seals the key it read (checks need the PEM)
        r = await api.patch(f"/certificates/{created['id']}", json={"tags": ["t"]})
        assert r.status_code == 200, r.text
        assert r.json()["key"] == pki.read("s003/rsa.key")
        (key2,), = (await raw(st, "certificates", "key")).values()
        assert key2.startswith("$ramparts$v1$k1$") and key2 != key
        # the snapshot load decrypts too
        loaded = await load_all(st)
        assert loaded.rows["certificates"][0]["key"] == pki.read("s003/rsa.key")


async def test_without_a_keyring_keys_stay_plaintext(store: Store, admin: httpx.AsyncClient,
                                                     pki: Pki) -> None:
    r = await admin.post("/certificates", json={"cert": pki.read("s003/server.crt"),
                                                "key": pki.read("s003/server.key")})
    assert r.status_code == 201
    (key,), = (await raw(store, "certificates", "key")).values()
    assert key == pki.read("s003/server.key")


async def test_rotation_reseals_every_row_under_the_current_key(store: Store, pki: Pki) -> None:
    await wipe(store)
    async with sealed_store(store.url, None) as plain, client(plain) as api:
        await _post_pair(api, pki, "legacy.test")  # written before any keyring
    async with sealed_store(store.url, ring("k1")) as old, client(old) as api:
        for n in range(4):
            await _post_pair(api, pki, f"r{n}.test")
    before_version = await store.config_version()
    async with sealed_store(store.url, ring("k2", "k1")) as new:
        report = await rotate(new, batch=2)
        assert (report.rows, report.resealed, report.failures) == (5, 10, [])
        stored = await raw(new, "certificates", "key", "key_alt")
        assert len(stored) == 5
        assert all(v.startswith("$ramparts$v1$k2$") for pair in stored.values() for v in pair)
        assert await store.config_version() > before_version  # running nodes reload
        again = await rotate(new, batch=2)
        assert (again.rows, again.resealed) == (0, 0)  # nothing left: no write at all
    async with sealed_store(store.url, ring("k2")) as only_new, client(only_new) as api:
        keys = {c["key"] for c in (await api.get("/certificates")).json()["data"]}
        assert keys == {pki.read("s003/rsa.key")}


async def test_a_node_without_a_key_id_serves_the_other_certificates(
        store: Store, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    await wipe(store)
    async with sealed_store(store.url, ring("k1")) as st, client(st) as api:
        lost = await _post_pair(api, pki, "lost.test")
    async with sealed_store(store.url, ring("k2")) as st, client(st) as api:
        kept = await _post_pair(api, pki, "kept.test")
        with caplog.at_level(logging.ERROR, logger="ramparts.keyring"):
            loaded = await load_all(st)
        assert [c["id"] for c in loaded.rows["certificates"]] == [kept["id"]]
        line, = [r.getMessage() for r in caplog.records if lost["id"] in r.getMessage()]
        assert "key id 'k1' is not in this node's keyring" in line
        assert "PRIVATE KEY" not in caplog.text
        # the Admin API says so too, naming the row and the key id; never ciphertext as PEM
        r = await api.get(f"/certificates/{lost['id']}")
        assert r.status_code == 500 and "'k1'" in r.json()["message"]
        assert lost["id"] in r.json()["message"]
        # a PATCH that replaces every key repairs it (the old keys are not needed) ...
        r = await api.patch(f"/certificates/{lost['id']}", json={"key": pki.read("s003/rsa.key")})
        assert r.status_code == 500 and "key_alt" in r.json()["message"]  # still needed
        r = await api.patch(f"/certificates/{lost['id']}", json={
            "cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key"),
            "cert_alt": None, "key_alt": None})
        assert r.status_code == 200, r.text
        assert sorted(c["id"] for c in (await load_all(st)).rows["certificates"]) == sorted(
            [kept["id"], lost["id"]])
        # ... and deleting a row works without reading its key
        assert (await api.delete(f"/certificates/{lost['id']}")).status_code == 204


async def test_tampered_ciphertext_is_refused(store: Store, pki: Pki) -> None:
    await wipe(store)
    async with sealed_store(store.url, ring("k1")) as st, client(st) as api:
        created = await _post_pair(api, pki, "tamper.test")
        (key,), = (await raw(st, "certificates", "key")).values()
        head, blob = key.rsplit("$", 1)
        data = bytearray(base64.b64decode(blob))
        data[-1] ^= 0x01  # one bit of the GCM tag
        async with st.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE certificates SET key = :k"),
                               {"k": f"{head}${base64.b64encode(bytes(data)).decode()}"})
        r = await api.get(f"/certificates/{created['id']}")
        assert r.status_code == 500 and "authentication failed" in r.json()["message"]
        assert (await load_all(st)).rows["certificates"] == []
        # ciphertext moved from another row does not open either (bound to its row id)
        other = await _post_pair(api, pki, "other.test")
        (moved,) = (await raw(st, "certificates", "key"))[other["id"]]
        certificates = tables.table("certificates")
        async with st.engine.begin() as conn:
            await conn.execute(sa.update(certificates).where(
                certificates.c.id == created["id"]).values(key=moved))
        r = await api.get(f"/certificates/{created['id']}")
        assert r.status_code == 500 and "authentication failed" in r.json()["message"]


async def test_admin_return_keys_false_omits_keys_from_every_answer(
        store: Store, pki: Pki) -> None:
    await wipe(store)
    async with sealed_store(store.url, ring("k1")) as st, \
            client(st, RAMPARTS_ADMIN_RETURN_KEYS="false") as api:
        created = await _post_pair(api, pki, "wo.test")
        r = await api.post("/services", json={"name": "s", "url": "https://u.test",
                                              "client_certificate": {"id": created["id"]}})
        assert r.status_code == 201, r.text
        answers = [created,
                   (await api.get(f"/certificates/{created['id']}")).json(),
                   (await api.get("/certificates/wo.test")).json(),
                   (await api.get("/certificates")).json()["data"][0],
                   (await api.get("/services/s/client_certificate")).json(),
                   (await api.patch(f"/certificates/{created['id']}",
                                    json={"tags": ["x"]})).json(),
                   (await api.put(f"/certificates/{created['id']}", json={
                       "cert": pki.read("s003/rsa.crt"),
                       "key": pki.read("s003/rsa.key")})).json()]
        for body in answers:
            assert body["id"] == created["id"] and "cert" in body, body
            assert "key" not in body and "key_alt" not in body, body
            assert "PRIVATE KEY" not in str(body) and "$ramparts$" not in str(body)
        # the keys are still there, sealed, for the proxy
        (key,), = (await raw(st, "certificates", "key")).values()
        assert key.startswith("$ramparts$v1$k1$")


# ---------------------------------------------------------------- a plugin's own secret
@dataclass(frozen=True, slots=True, kw_only=True)
class VaultConfig:
    client_id: str
    client_secret: Annotated[str, Secret()]


VAULT = PluginSpec.define("vault-auth", VaultConfig, version="0.1.0", priority=1)


def with_vault() -> registry.Registry:
    base = registry.build()
    return registry.Registry(entities=base.entities,
                             available=MappingProxyType({**base.available, "vault-auth": VAULT}),
                             enabled=MappingProxyType({**base.enabled, "vault-auth": VAULT}))


async def test_a_plugin_declares_a_secret_with_the_same_marker(store: Store) -> None:
    await wipe(store)
    async with sealed_store(store.url, ring("k1"), with_vault()) as st, client(st) as api:
        r = await api.post("/plugins", json={"name": "vault-auth", "config": {
            "client_id": "app", "client_secret": "s3cr3t-value"}})
        assert r.status_code == 201, r.text
        assert r.json()["config"]["client_secret"] == "s3cr3t-value"
        (config,), = (await raw(st, "plugins", "config")).values()
        if isinstance(config, str):  # SQLite hands JSON back as text
            config = json.loads(config)
        assert config["client_id"] == "app"
        assert config["client_secret"].startswith("$ramparts$v1$k1$")
        r = await api.patch(f"/plugins/{r.json()['id']}", json={"config": {"client_id": "b"}})
        assert r.json()["config"] == {"client_id": "b", "client_secret": "s3cr3t-value"}
    async with sealed_store(store.url, ring("k1"), with_vault()) as st, \
            client(st, RAMPARTS_ADMIN_RETURN_KEYS="false") as api:
        body = (await api.get("/plugins")).json()["data"][0]
        assert body["config"] == {"client_id": "b"}


async def test_schemas_mark_secret_fields_encrypted_as_kong_does(admin: httpx.AsyncClient
                                                                 ) -> None:
    fields = {name: spec for f in (await admin.get("/schemas/certificates")).json()["fields"]
              for name, spec in f.items()}
    assert fields["key"].get("encrypted") is True
    assert fields["key_alt"].get("encrypted") is True
    assert "encrypted" not in fields["cert"]
