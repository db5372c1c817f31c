"""One consistent read of everything the proxy needs (REPEATABLE READ on PostgreSQL; one read
transaction, i.e. one WAL snapshot, on SQLite)."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.db import tables
from gateway.db.store import Store, read_version, row_mapping
from gateway.snapshot import Loaded

SNAPSHOT_ENTITIES = ("services", "routes", "certificates", "snis", "plugins",
                     "ca_certificates", "upstreams", "targets", "consumers",
                     "mtls_auth_credentials", "acls", "ca_crls")


async def load_all(store: Store, names: tuple[str, ...] = SNAPSHOT_ENTITIES) -> Loaded:
    async with store.read() as conn:
        if store.dialect == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            version = await read_version(conn)
            rows = {}
            for name in names:
                dao = store.dao(name)
                result = await conn.execute(sa.select(tables.table(name)))
                rows[name] = [dao.to_json(row_mapping(r)) for r in result.all()]
            marks = await conn.execute(sa.select(tables.target_health))
            rows["target_health"] = [{"target_id": str(r.target_id), "healthy": r.healthy,
                                      "stamp": r.stamp} for r in marks.all()]
    return Loaded(version=version, rows=rows)
