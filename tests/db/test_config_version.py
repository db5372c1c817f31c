"""Every write bumps the config version in its own transaction; PostgreSQL also NOTIFYs."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from gateway.db.store import NOTIFY_CHANNEL, Store


async def test_every_write_bumps_the_version(admin: httpx.AsyncClient, store: Store) -> None:
    v0 = await store.config_version()
    await admin.post("/services", json={"name": "s", "host": "h"})
    v1 = await store.config_version()
    await admin.patch("/services/s", json={"retries": 1})
    v2 = await store.config_version()
    await admin.delete("/services/s")
    v3 = await store.config_version()
    assert v0 < v1 < v2 < v3
    # a rejected write changes nothing, not even the version
    await admin.post("/services", json={})
    assert await store.config_version() == v3


async def test_postgres_notifies_on_commit(admin: httpx.AsyncClient, store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is a PostgreSQL feature; SQLite nodes poll")
    url = store.url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    received: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener(NOTIFY_CHANNEL, lambda *args: received.put_nowait(args[3]))
    try:
        await admin.post("/consumers", json={"username": "n"})
        payload = await asyncio.wait_for(received.get(), timeout=5)
        assert int(payload) == await store.config_version()
    finally:
        await conn.close()
