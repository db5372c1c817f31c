"""The ``ramparts_nodes`` table: each node's heartbeat and the configuration version it serves.

Heartbeats are not configuration: they are written with ``Store.write(config=False)`` (no
version bump, no NOTIFY, no reload). Times that decide liveness (``last_seen``) come from the
database's clock, so every node agrees on who is live whatever its own clock says.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import tables
from gateway.db.store import Store, read_version

PRUNE_AFTER = 3600.0  # seconds: rows of nodes gone this long are deleted by any heartbeat


@dataclass(frozen=True, slots=True)
class NodeState:
    """What one node reports about itself."""

    id: str
    hostname: str
    applied_version: int
    applied_at: float | None  # the node's wall clock (epoch seconds) when it swapped it in
    configuration_error: str | None = None


@dataclass(frozen=True, slots=True)
class SeenNode:
    state: NodeState
    age: float  # seconds since its last heartbeat, by the database's clock


def db_now(dialect: str) -> sa.ColumnElement[float]:
    """The database's current time in epoch seconds (with fractions)."""
    if dialect == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


async def beat(store: Store, state: NodeState) -> None:
    """Insert or refresh this node's row, and forget nodes gone for an hour."""
    nodes = tables.nodes
    values = {"hostname": state.hostname, "applied_version": state.applied_version,
              "applied_at": state.applied_at,
              "configuration_error": state.configuration_error,
              "last_seen": db_now(store.dialect)}
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    stmt = insert(nodes).values(id=state.id, **values)
    stmt = stmt.on_conflict_do_update(index_elements=[nodes.c.id], set_=values)
    async with store.write(config=False) as conn:
        await conn.execute(stmt)
        await conn.execute(sa.delete(nodes).where(
            nodes.c.last_seen < db_now(store.dialect) - PRUNE_AFTER))


async def leave(store: Store, node_id: str) -> None:
    """A node that stops cleanly leaves the cluster view at once."""
    async with store.write(config=False) as conn:
        await conn.execute(sa.delete(tables.nodes).where(tables.nodes.c.id == node_id))


async def live(store: Store, ttl: float) -> tuple[int, list[SeenNode]]:
    """The stored configuration version and every node seen in the last ``ttl`` seconds,
    read in one transaction."""
    async with store.read() as conn, conn.begin():
        version = await read_version(conn)
        return version, await _seen(conn, store.dialect, ttl)


async def _seen(conn: AsyncConnection, dialect: str, ttl: float) -> list[SeenNode]:
    nodes = tables.nodes
    age = (db_now(dialect) - nodes.c.last_seen).label("age")
    result = await conn.execute(sa.select(nodes, age).where(age <= ttl)
                                .order_by(nodes.c.hostname, nodes.c.id))
    return [SeenNode(NodeState(r.id, r.hostname, int(r.applied_version), r.applied_at,
                               r.configuration_error), max(0.0, float(r.age)))
            for r in result.all()]
