"""``GET /status/cluster``: live nodes with version, lag and currency; ``wait_for`` blocks until
every live node applied a version, 504 naming the laggards on timeout; bad options are 400."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gateway.db import nodes
from gateway.db.nodes import NodeState
from gateway.db.store import Store


async def bump(store: Store) -> int:
    async with store.write():
        pass
    return await store.config_version()


async def test_lists_live_nodes_with_lag(admin: httpx.AsyncClient, store: Store) -> None:
    version = await bump(store)
    await nodes.beat(store, NodeState("a", "host-a", version, 10.0))
    await nodes.beat(store, NodeState("b", "host-b", version - 1, 9.0))
    body = (await admin.get("/status/cluster")).json()
    assert body["configuration_version"] == version and body["current"] is False
    assert [(n["id"], n["lag"], n["current"]) for n in body["data"]] == [
        ("a", 0, True), ("b", 1, False)]
    assert "laggards" not in body


async def test_wait_for_returns_once_every_node_applied(admin: httpx.AsyncClient,
                                                        store: Store) -> None:
    version = await bump(store)
    await nodes.beat(store, NodeState("a", "host-a", version, None))
    await nodes.beat(store, NodeState("b", "host-b", version - 1, None))
    started = time.monotonic()
    waiting = asyncio.ensure_future(admin.get(f"/status/cluster?wait_for={version}&timeout=20"))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # node b is behind
    await nodes.beat(store, NodeState("b", "host-b", version, None))
    r = await asyncio.wait_for(waiting, 15)
    assert r.status_code == 200, r.text
    assert r.json()["laggards"] == [] and time.monotonic() - started < 15


async def test_wait_for_times_out_with_the_laggards(admin: httpx.AsyncClient,
                                                    store: Store) -> None:
    version = await bump(store)
    await nodes.beat(store, NodeState("a", "host-a", version, None))
    await nodes.beat(store, NodeState("b", "host-b", version - 1, None))
    r = await admin.get(f"/status/cluster?wait_for={version}&timeout=0.3")
    assert r.status_code == 504
    body = r.json()
    assert body["laggards"] == ["b"]
    assert body["message"] == (f"timed out after 0.3 s waiting for configuration version "
                               f"{version}: 1 of 2 live nodes behind")


@pytest.mark.parametrize(("query", "options"), [
    ("wait_for=x", {"wait_for": "expected a configuration version (a non-negative integer)"}),
    ("wait_for=-1", {"wait_for": "expected a configuration version (a non-negative integer)"}),
    ("wait_for=٣", {"wait_for": "expected a configuration version (a non-negative integer)"}),
    ("wait_for=1&timeout=61", {"timeout": "expected seconds between 0 and 60"}),
    ("wait_for=1&timeout=nan", {"timeout": "expected seconds between 0 and 60"}),
    ("timeout=5", {"timeout": "only meaningful with wait_for"}),
])
async def test_bad_options_are_refused(admin: httpx.AsyncClient, query: str,
                                       options: dict[str, str]) -> None:
    r = await admin.get(f"/status/cluster?{query}")
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == 11 and body["name"] == "invalid options"
    assert body["options"] == options
