"""The change log (migration 0007) as a reload reads it: which rows of which tables changed or
went since the version a reloader's row cache holds.

Every query runs inside the load's one transaction. The log is trusted only where nothing can
have slipped past it: the same epoch (no downgrade/upgrade in between), a version not older
than the cache's (a restored database, a lagging replica), and the table's triggers present
(a table without them, e.g. rebuilt by a later SQLite migration, is read whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import tables

EPOCH_KEY = "change_epoch"  # written by migration 0007's upgrade, new at each upgrade
HORIZON_KEY = "change_horizon"  # tombstones up to this version have been pruned
KEEP_VERSIONS = 10_000  # tombstones are kept this many versions back
PRUNE_EVERY = 1_000  # versions between two prunings (each in a write transaction)


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a cache stands: exactly the rows of ``version`` under change log ``epoch``."""

    epoch: int
    version: int


@dataclass(slots=True)
class Since:
    """The log since a mark: tables trusted to it, and per table the ids (raw, as the
    driver returns them from the table) deleted since."""

    mark: Mark
    tracked: frozenset[str]
    changed: set[str] = field(default_factory=set)
    deleted: dict[str, list[Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # rows per table (the check)


async def state(conn: AsyncConnection) -> tuple[int | None, int]:
    """The epoch (None on a database without the change log: not migrated to 0007, read
    everything) and the pruning horizon (a cache older than it reads everything)."""
    meta = tables.meta
    result = await conn.execute(sa.select(meta.c.key, meta.c.value).where(
        meta.c.key.in_((EPOCH_KEY, HORIZON_KEY))))
    rows = {key: value for key, value in result.all()}
    epoch = rows.get(EPOCH_KEY)
    return None if epoch is None else int(epoch), int(rows.get(HORIZON_KEY) or 0)


async def prune(conn: AsyncConnection, version: int, keep: int = KEEP_VERSIONS) -> None:
    """In a write transaction: tombstones more than ``keep`` versions old go, and the
    horizon moves up to them (a node whose copy is older reads everything once). Live rows'
    entries stay: they are what a reload reads changed rows by."""
    if (await state(conn))[0] is None:
        return  # no change log in this database
    horizon = version - keep
    changes, meta = tables.changes, tables.meta
    await conn.execute(sa.delete(changes).where(changes.c.deleted,
                                                changes.c.version <= horizon))
    updated = await conn.execute(sa.update(meta).where(meta.c.key == HORIZON_KEY)
                                 .values(value=sa.func.max(meta.c.value, horizon)
                                         if conn.dialect.name == "sqlite"
                                         else sa.func.greatest(meta.c.value, horizon)))
    if updated.rowcount == 0:
        await conn.execute(sa.insert(meta).values(key=HORIZON_KEY, value=max(horizon, 0)))


async def since(conn: AsyncConnection, mark: Mark, names: Sequence[str]) -> Since:
    """The log since ``mark``, and the row count of each of ``names`` (one query)."""
    out = Since(mark=mark, tracked=await _tracked(conn))
    quote = conn.dialect.identifier_preparer.quote
    counts = ", ".join(f"(SELECT count(*) FROM {quote(name)})" for name in names)
    out.counts = dict(zip(names, (await conn.execute(sa.text(f"SELECT {counts}"))).one(),
                          strict=True))
    ident = "CAST(entity_id AS uuid)" if conn.dialect.name == "postgresql" else "entity_id"
    rows = await conn.execute(sa.text(
        f"SELECT entity_name, {ident}, deleted FROM ramparts_changes WHERE version > :v"),
        {"v": mark.version})
    for name, raw_id, deleted in rows.all():
        if deleted:
            out.deleted.setdefault(name, []).append(raw_id)
        else:
            out.changed.add(name)
    return out


async def changed_rows(conn: AsyncConnection, table: sa.Table, version: int
                       ) -> tuple[Sequence[Any], list[Any] | None]:
    """The raw rows of ``table`` written after ``version`` (and the driver's column types,
    as ``gateway/db/rowcache.py`` converts them)."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(f"t.{quote(c.name)}" for c in table.columns)
    ident = "CAST(c.entity_id AS uuid)" if conn.dialect.name == "postgresql" else "c.entity_id"
    result = await conn.execute(sa.text(  # names from our schema, quoted
        f"SELECT {columns} FROM ramparts_changes c JOIN {quote(table.name)} t "
        f"ON t.id = {ident} WHERE c.entity_name = :name AND c.version > :v"),
        {"name": table.name, "v": version})
    coltypes = [d[1] for d in result.cursor.description] if result.cursor else None
    return result.all(), coltypes


async def _tracked(conn: AsyncConnection) -> frozenset[str]:
    """The tables whose change triggers exist (three per table on SQLite, one on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        query = ("SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                 "WHERE t.tgname = 'ramparts_changed' AND pg_table_is_visible(c.oid)")
        return frozenset(r[0] for r in (await conn.execute(sa.text(query))).all())
    query = ("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
             "'ramparts\\_changed\\_%' ESCAPE '\\' GROUP BY tbl_name HAVING count(*) = 3")
    return frozenset(r[0] for r in (await conn.execute(sa.text(query))).all())
