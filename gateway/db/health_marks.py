"""Manual target health marks, shared by every node through the database."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.db import tables
from gateway.db.store import Store, read_version


async def mark_target(store: Store, target_id: str, healthy: bool) -> None:
    """One write: the mark carries the config version it was written with, so each node
    applies it exactly once, in order, when its reloader sees that version."""
    t = tables.target_health
    async with store.write() as conn:
        stamp = await read_version(conn)
        await conn.execute(sa.delete(t).where(t.c.target_id == target_id))
        await conn.execute(sa.insert(t).values(target_id=target_id, healthy=healthy,
                                               stamp=stamp))
