"""One consistent read of everything the proxy needs (REPEATABLE READ on PostgreSQL; one read
transaction, i.e. one WAL snapshot, on SQLite). Secrets are decrypted here, on their way into
the snapshot."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import changes, tables
from gateway.db.dao import Dao, Row
from gateway.db.rowcache import RowCache
from gateway.db.store import Store, read_version, row_mapping
from gateway.errors import SecretUnavailable
from gateway.snapshot import Loaded

log = logging.getLogger("ramparts.keyring")

SNAPSHOT_ENTITIES = ("services", "routes", "certificates", "snis", "plugins",
                     "ca_certificates", "upstreams", "targets", "consumers",
                     "mtls_auth_credentials", "acls", "ca_crls")


async def load_all(store: Store, names: tuple[str, ...] = SNAPSHOT_ENTITIES,
                   cache: RowCache | None = None) -> Loaded:
    """With a ``cache`` (one per reloader), rows unchanged since its previous load are
    reused instead of converted and decrypted again (``gateway/db/rowcache.py``), and where
    the change log allows only the changed rows are read (``gateway/db/changes.py``)."""
    mark = cache.mark if cache is not None else None
    if cache is not None:
        cache.begin()
    async with store.read() as conn:
        if store.dialect == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            version = await read_version(conn)
            epoch, horizon = await changes.state(conn) if cache is not None else (None, 0)
            log_since = await _log_since(conn, mark, (epoch, horizon), version, names)
            rows = {}
            for name in names:
                dao = store.dao(name)
                if cache is None:
                    result = await conn.execute(sa.select(tables.table(name)))
                    rows[name] = opened(dao, (dao.to_json(row_mapping(r))
                                              for r in result.all()))
                elif log_since is None:
                    rows[name] = await cache.read(conn, dao, open_one)
                else:
                    rows[name] = await cache.follow(conn, dao, log_since, open_one)
            marks = await conn.execute(sa.select(tables.target_health))
            rows["target_health"] = [{"target_id": str(r.target_id), "healthy": r.healthy,
                                      "stamp": r.stamp} for r in marks.all()]
    if cache is not None and epoch is not None:
        cache.mark = changes.Mark(epoch, version)
    return Loaded(version=version, rows=rows)


async def _log_since(conn: AsyncConnection, mark: changes.Mark | None,
                     state: tuple[int | None, int], version: int, names: tuple[str, ...]
                     ) -> changes.Since | None:
    """The change log since the cache's mark, or None when it cannot be trusted: no cache
    yet, no change log, another epoch (migrated down and up), an older version (a restored
    database, a replica behind the primary the cache read), tombstones pruned since."""
    epoch, horizon = state
    if mark is None or epoch is None or epoch != mark.epoch or version < mark.version or \
            mark.version < horizon:
        return None
    return await changes.since(conn, mark, names)


def opened(dao: Dao, rows: Iterable[Row]) -> list[Row]:
    """Rows with their secrets decrypted. A row this node cannot decrypt is left out and
    named in the log (the others are served); never served with its ciphertext. A plugin is
    not left out (that would open its routes): it stays, under a name no handler runs, so the
    routes it covers fail closed."""
    return [o[0] for o in (open_one(dao, row) for row in rows) if o is not None]


def open_one(dao: Dao, row: Row) -> tuple[Row, bool] | None:
    """One row opened, and whether it may be reused by the next load (a stand-in for a
    sealed plugin may not: once the keyring can open it, the real row must be served)."""
    try:
        return dao.open(row), True
    except SecretUnavailable as exc:
        if dao.entity.name == "plugins":
            log.error("%s; the routes it covers answer 500 until it can be", exc)
            return {**dao.without_secrets(row), "name": f"{row['name']} (sealed)"}, False
        log.error("%s; not serving it", exc)
        return None
