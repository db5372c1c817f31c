"""An unreachable database: the Admin API says so (503) and /status still answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry
from gateway.db.store import Store
from gateway.settings.load import load
from tests.e2e.proc import free_port


@pytest_asyncio.fixture
async def down() -> AsyncIterator[httpx.AsyncClient]:
    # a port nothing listens on: connections are refused at once
    store = Store(f"postgresql://postgres@127.0.0.1:{free_port()}/none", registry.build())
    app = create_app(store, NodeInfo(settings=load(env={}), node_id=str(uuid.uuid4())))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield client
    await store.close()


async def test_reads_and_writes_are_503(down: httpx.AsyncClient) -> None:
    for response in (await down.get("/services"),
                     await down.post("/services", json={"host": "h"})):
        assert response.status_code == 503
        assert response.json()["message"].startswith("database unreachable: ")


async def test_status_reports_unreachable(down: httpx.AsyncClient) -> None:
    r = await down.get("/status")
    assert r.status_code == 200
    assert r.json()["database"] == {"reachable": False}
    assert "configuration_version" not in r.json()
