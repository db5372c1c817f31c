"""Admin API authentication: tokens and roles, on both databases, through the real app."""

from __future__ import annotations

import hashlib

import httpx
import pytest
import sqlalchemy as sa
from starlette.types import Receive, Scope, Send

from admin.auth import (
    ACTOR,
    AuthMiddleware,
    Principal,
    authorize,
    credentials_required,
    presented_token,
)
from gateway.db import admin_tokens, tables
from gateway.db.store import Store
from gateway.errors import Forbidden
from gateway.settings import listen
from gateway.settings.load import load
from tests.admin.apps import admin_client
from tests.conftest import wipe

REQUIRED = {"RAMPARTS_ADMIN_AUTH": "required"}


@pytest.fixture
async def clean(store: Store) -> Store:
    await wipe(store)
    return store


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("auth", "entry", "required"), [
    ("off", "127.0.0.1:8001", False), ("on", "127.0.0.1:8001", False),
    ("required", "127.0.0.1:8001", True), ("off", "[::1]:8001", False),
    ("off", "localhost:8001", False), ("on", "0.0.0.0:8001", True),
    ("on", "10.0.0.1:8001 ssl", True), ("on", "[::]:8001", True),
    ("on", "admin.internal:8001", True), ("required", "0.0.0.0:8001", True),
])
def test_where_credentials_are_required(auth: str, entry: str, required: bool) -> None:
    settings = load(env={"RAMPARTS_ADMIN_AUTH": auth, "RAMPARTS_ADMIN_LISTEN": entry})
    assert credentials_required(settings, listen.parse_entry(entry)) is required


@pytest.mark.parametrize(("headers", "token"), [
    ({}, None),
    ({b"kong-admin-token": b"rpat_a"}, "rpat_a"),
    ({b"kong-admin-token": b" rpat_a "}, "rpat_a"),
    ({b"kong-admin-token": b""}, ""),
    ({b"authorization": b"Bearer rpat_b"}, "rpat_b"),
    ({b"authorization": b"bearer  rpat_b"}, "rpat_b"),
    ({b"authorization": b"Basic dTpw"}, None),  # a proxy's basic auth is not ours
    ({b"authorization": b"Bearer"}, ""),
    ({b"kong-admin-token": b"rpat_a", b"authorization": b"Bearer rpat_b"}, "rpat_a"),
])
def test_presented_token(headers: dict[bytes, bytes], token: str | None) -> None:
    assert presented_token(headers) == token


@pytest.mark.parametrize(("role", "method", "allowed"), [
    ("admin", "GET", True), ("admin", "POST", True), ("admin", "DELETE", True),
    ("read-only", "GET", True), ("read-only", "HEAD", True), ("read-only", "OPTIONS", True),
    ("read-only", "POST", False), ("read-only", "PUT", False), ("read-only", "PATCH", False),
    ("read-only", "DELETE", False), ("read-only", "TRACE", False),
])
def test_roles(role: str, method: str, allowed: bool) -> None:
    principal = Principal("token:t", role)
    if allowed:
        authorize(principal, method)
    else:
        with pytest.raises(Forbidden):
            authorize(principal, method)


async def test_read_only_token_reads_but_cannot_write(clean: Store) -> None:
    token = await admin_tokens.create(clean, "auditor", "read-only")
    async with admin_client(clean, REQUIRED) as admin:
        assert (await admin.get("/consumers", headers={"kong-admin-token": token})
                ).status_code == 200
        assert (await admin.head("/consumers", headers=bearer(token))).status_code == 200
        r = await admin.post("/consumers", json={"username": "x"}, headers=bearer(token))
        assert r.status_code == 403
        assert r.json() == {"message": "You do not have permissions to create this resource "
                                       "(token:auditor has the read-only role)"}
        r = await admin.delete("/consumers/x", headers={"kong-admin-token": token})
        assert r.status_code == 403
        assert (await admin.get("/consumers", headers=bearer(token))).json()["data"] == []


async def test_admin_token_writes(clean: Store) -> None:
    token = await admin_tokens.create(clean, "ops", "admin")
    async with admin_client(clean, REQUIRED) as admin:
        r = await admin.post("/consumers", json={"username": "x"}, headers=bearer(token))
        assert r.status_code == 201
        r = await admin.delete("/consumers/x", headers={"kong-admin-token": token})
        assert r.status_code == 204


async def test_missing_invalid_and_revoked_tokens_are_401(clean: Store) -> None:
    token = await admin_tokens.create(clean, "leaving", "admin")
    async with admin_client(clean, REQUIRED) as admin:
        r = await admin.get("/certificates")
        assert r.status_code == 401 and r.json() == {"message": "Invalid RBAC credentials"}
        assert r.headers["www-authenticate"] == 'Bearer realm="ramparts-admin"'
        for bad in ("rpat_" + "A" * 43, token[:-1], "", "x" * 5000, token + "x"):
            r = await admin.get("/certificates", headers=bearer(bad))
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == \
                'Bearer realm="ramparts-admin", error="invalid_token"'
        assert (await admin.get("/certificates", headers=bearer(token))).status_code == 200
        await admin_tokens.revoke(clean, "leaving")
        assert (await admin.get("/certificates", headers=bearer(token))).status_code == 401
        r = await admin.post("/consumers", json={"username": "x"}, headers=bearer(token))
        assert r.status_code == 401
        # a preflight carries no credentials: it is answered (what it reveals is static)
        assert (await admin.options("/consumers")).status_code == 204


async def test_non_loopback_listener_needs_credentials(clean: Store) -> None:
    token = await admin_tokens.create(clean, "remote", "admin")
    env = {"RAMPARTS_ADMIN_LISTEN": "0.0.0.0:8001", "RAMPARTS_ADMIN_AUTH": "on"}
    async with admin_client(clean, env, base_url="http://10.1.2.3:8001") as admin:
        assert (await admin.get("/consumers")).status_code == 401
        assert (await admin.post("/consumers", json={"username": "x"})).status_code == 401
        assert (await admin.get("/consumers", headers=bearer(token))).status_code == 200
    # the same settings, a loopback listener of that node: Kong's behaviour, no credentials
    env["RAMPARTS_ADMIN_LISTEN"] = "0.0.0.0:8001, 127.0.0.1:8002"
    async with admin_client(clean, env, listener="127.0.0.1:8002") as admin:
        assert (await admin.get("/consumers")).status_code == 200


async def test_loopback_serves_anonymous_but_checks_what_is_sent(clean: Store) -> None:
    token = await admin_tokens.create(clean, "ro", "read-only")
    async with admin_client(clean) as admin:
        assert (await admin.post("/consumers", json={"username": "a"})).status_code == 201
        assert (await admin.get("/consumers", headers=bearer("rpat_nope"))).status_code == 401
        r = await admin.post("/consumers", json={"username": "b"}, headers=bearer(token))
        assert r.status_code == 403


async def test_tokens_are_stored_hashed_and_are_not_configuration(clean: Store) -> None:
    before = await clean.config_version()
    token = await admin_tokens.create(clean, "ci", "admin")
    assert token.startswith("rpat_") and len(token) >= 48
    t = tables.admin_tokens
    async with clean.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t))).all()
    assert [(r.name, r.role) for r in rows] == [("ci", "admin")]
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(rows)
    assert await clean.config_version() == before
    with pytest.raises(admin_tokens.TokenError, match="already exists"):
        await admin_tokens.create(clean, "ci", "read-only")
    with pytest.raises(admin_tokens.TokenError, match="invalid role"):
        await admin_tokens.create(clean, "x", "root")
    with pytest.raises(admin_tokens.TokenError, match="invalid token name"):
        await admin_tokens.create(clean, "a b", "admin")
    with pytest.raises(admin_tokens.TokenError, match="no admin token named 'nope'"):
        await admin_tokens.revoke(clean, "nope")
    assert [x.name for x in await admin_tokens.list_all(clean)] == ["ci"]
    assert await clean.config_version() == before


async def test_every_request_names_its_actor(clean: Store) -> None:
    """``scope["ramparts.actor"]`` for what runs after authentication (the audit log)."""
    token = await admin_tokens.create(clean, "named", "admin")
    seen: list[str] = []

    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope[ACTOR])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    settings = load(env={})
    app = AuthMiddleware(probe, clean, settings, settings.admin_listeners[0])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8001") as c:
        await c.get("/")
        await c.post("/", headers={"kong-admin-token": token})
    assert seen == ["peer:127.0.0.7", "token:named"]
