"""Heartbeats in ``ramparts_nodes`` on both databases: upsert, liveness by the database's
clock, clean leave, and no configuration version bump."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from gateway.cluster import Heartbeat
from gateway.db import nodes, tables
from gateway.db.nodes import NodeState
from gateway.db.store import Store
from tests.conftest import wipe


async def test_beats_upsert_and_never_bump_the_version(store: Store) -> None:
    await wipe(store)
    before = await store.config_version()
    await nodes.beat(store, NodeState("a", "host-a", 3, 100.0))
    await nodes.beat(store, NodeState("a", "host-a", 4, 101.0, "broken"))
    await nodes.beat(store, NodeState("b", "host-b", 4, None))
    version, seen = await nodes.live(store, ttl=5)
    assert version == before == await store.config_version()
    assert [(n.state.id, n.state.applied_version, n.state.applied_at,
             n.state.configuration_error) for n in seen] == [
        ("a", 4, 101.0, "broken"), ("b", 4, None, None)]
    assert all(0 <= n.age < 5 for n in seen)


async def test_silent_nodes_drop_out_and_leavers_go_at_once(store: Store) -> None:
    await wipe(store)
    await nodes.beat(store, NodeState("old", "h", 1, None))
    await nodes.beat(store, NodeState("gone", "h", 1, None))
    await nodes.beat(store, NodeState("here", "h", 1, None))
    async with store.write(config=False) as conn:  # 'old' last beat 10 s ago
        await conn.execute(sa.update(tables.nodes).where(tables.nodes.c.id == "old")
                           .values(last_seen=tables.nodes.c.last_seen - 10))
    await nodes.leave(store, "gone")
    _, seen = await nodes.live(store, ttl=5)
    assert [n.state.id for n in seen] == ["here"]
    _, seen = await nodes.live(store, ttl=30)
    assert sorted(n.state.id for n in seen) == ["here", "old"]


async def test_rows_of_nodes_gone_an_hour_are_pruned(store: Store) -> None:
    await wipe(store)
    await nodes.beat(store, NodeState("ancient", "h", 1, None))
    async with store.write(config=False) as conn:
        await conn.execute(sa.update(tables.nodes).values(
            last_seen=tables.nodes.c.last_seen - nodes.PRUNE_AFTER - 60))
    await nodes.beat(store, NodeState("fresh", "h", 1, None))
    async with store.read() as conn:
        ids = (await conn.execute(sa.select(tables.nodes.c.id))).scalars().all()
    assert ids == ["fresh"]


async def test_heartbeat_beats_until_stopped_then_leaves(store: Store) -> None:
    await wipe(store)
    version = 1
    heartbeat = Heartbeat(store, lambda: NodeState("hb", "h", version, None), interval=0.05)
    heartbeat.start()
    try:
        for _ in range(100):  # bounded: 100 reads at most
            _, seen = await nodes.live(store, ttl=5)
            if seen and seen[0].state.applied_version == 2:
                break
            version = 2
            heartbeat.poke()
            await asyncio.sleep(0.05)
        assert [(n.state.id, n.state.applied_version) for n in seen] == [("hb", 2)]
    finally:
        await heartbeat.stop()
    _, seen = await nodes.live(store, ttl=5)
    assert seen == []  # gone at once, not after the ttl
