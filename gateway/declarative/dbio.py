"""A declarative configuration into the database (``db_import``) and back out (``export``).

Import writes every entry in one transaction (the config version bumped once), in bulk: each
entry was validated by its entity's DAO when the file was parsed, and what only the database
can tell (a unique value held by another row) is checked here. All or nothing; nothing is
deleted by ``db_import``; ``replace`` (DB-less) swaps the whole configuration.
Export is one consistent read (REPEATABLE READ on PostgreSQL), in Kong's export format: flat
top-level lists, references as bare ids, nulls kept; secrets decrypted through the DAO's
read path, and left out unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import tables
from gateway.db.dao import Dao
from gateway.db.store import Store
from gateway.declarative import order
from gateway.declarative.parse import Config, Entry
from gateway.declarative.tree import put
from gateway.errors import FieldErrors, InvalidDeclarativeConfig, UniqueViolation

Rows = dict[str, dict[str, dict[str, Any]]]
Progress = Callable[[int, int], None]


async def db_import(store: Store, config: Config, progress: Progress | None = None
                    ) -> dict[str, int]:
    """Upsert every entry in one transaction; nothing else is touched (Kong's db_import)."""
    async with store.write() as conn:
        return await _write_all(conn, store, config, progress, upsert=True)


async def replace(store: Store, config: Config) -> None:
    """The whole configuration replaced in one transaction (DB-less ``POST /config``):
    readers, the reloader included, see the old rows or the new ones, never a mix."""
    async with store.write() as conn:
        for name in reversed(entity_names(store)):  # children first
            await conn.execute(sa.delete(tables.table(name)))
        await conn.execute(sa.delete(tables.tags))
        await _write_all(conn, store, config, None, upsert=False)


async def _write_all(conn: AsyncConnection, store: Store, config: Config,
                     progress: Progress | None, *, upsert: bool) -> dict[str, int]:
    """Rows in bulk, parents first. Every entry was validated by its DAO when parsed and the
    file's own references and uniqueness are checked, so what is left to check is the
    database's other rows (``upsert``): a unique value or cache key held by another id."""
    total = sum(len(entries) for entries in config.entries.values())
    done = 0
    counts: dict[str, int] = {}
    for entity, entries in config.entries.items():
        counts[entity] = len(entries)
        if not entries:
            continue
        dao = store.dao(entity)
        rows = [dao.to_row(dao.seal(e.values)) for e in entries]
        existing: set[str] = set()
        if upsert:
            await _check_taken(conn, dao, entries, rows)
            existing = await _existing(conn, entity, [r["id"] for r in rows])
        try:
            await _insert(conn, entity, [r for r in rows if r["id"] not in existing])
            await _update(conn, entity, [r for r in rows if r["id"] in existing])
        except IntegrityError as exc:  # a constraint no check above foresaw
            raise InvalidDeclarativeConfig({entity: f"cannot be written: {exc.orig}"}) from exc
        if dao.entity.has_tags:
            await _tags(conn, entity, entries, existing)
        done += len(entries)
        if progress is not None:
            progress(done, total)
    return counts


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def _existing(conn: AsyncConnection, entity: str, ids: list[str]) -> set[str]:
    table = tables.table(entity)
    found: set[str] = set()
    for chunk in _chunks(ids):
        result = await conn.execute(sa.select(table.c.id).where(table.c.id.in_(chunk)))
        found.update(str(r[0]) for r in result.all())
    return found


async def _check_taken(conn: AsyncConnection, dao: Dao, entries: list[Entry],
                       rows: list[dict[str, Any]]) -> None:
    """Kong's unique violation (code 5) for a value another row of the database holds,
    located at the entry that wants it."""
    table = tables.table(dao.entity.name)
    columns = list(dao.entity.unique_fields) + (["cache_key"] if dao.entity.cache_key else [])
    for column in columns:
        wanted = {row[column]: i for i, row in enumerate(rows) if row.get(column) is not None}
        for chunk in _chunks(list(wanted)):
            result = await conn.execute(sa.select(table.c.id, table.c[column])
                                        .where(table.c[column].in_(chunk)))
            for ident, value in result.all():
                i = wanted[value]
                if str(ident) != rows[i]["id"]:
                    key = ({column: value} if column != "cache_key"
                           else dao.cache_key_fields(entries[i].values))
                    errors: FieldErrors = {}
                    put(errors, entries[i].path,
                        {"@entity": [UniqueViolation(key).message]})
                    raise InvalidDeclarativeConfig(errors)


async def _insert(conn: AsyncConnection, entity: str, rows: list[dict[str, Any]]) -> None:
    table = tables.table(entity)
    for chunk in _chunks(rows):
        await conn.execute(sa.insert(table), chunk)


async def _update(conn: AsyncConnection, entity: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = tables.table(entity)
    names = [k for k in rows[0] if k != "id"]
    statement = sa.update(table).where(table.c.id == sa.bindparam("_ident")).values(
        {k: sa.bindparam(k) for k in names})
    for chunk in _chunks(rows):
        await conn.execute(statement, [{**{k: r[k] for k in names}, "_ident": r["id"]}
                                       for r in chunk])


async def _tags(conn: AsyncConnection, entity: str, entries: list[Entry],
                existing: set[str]) -> None:
    t = tables.tags
    if existing:
        for chunk in _chunks(sorted(existing)):
            await conn.execute(sa.delete(t).where(t.c.entity_id.in_(chunk)))
    rows = [{"entity_id": e.values["id"], "tag": tag, "entity_name": entity}
            for e in entries for tag in (e.values.get("tags") or ())]
    for chunk in _chunks(rows):
        await conn.execute(sa.insert(t), chunk)


def entity_names(store: Store) -> tuple[str, ...]:
    reg = store.registry
    return order.import_order({n: e for n, e in reg.entities.items()
                               if reg.entity_plugin_enabled(e)})


async def read_rows(store: Store, *, secrets: bool = True) -> Rows:
    """Every entity's rows (JSON view, stored fields only) by id, in one consistent read;
    secrets decrypted (``secrets=True``) or left out."""
    out: Rows = {}
    async with store.read() as conn:
        if store.dialect == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            for name in entity_names(store):
                dao = store.dao(name)
                stored = [f.name for f in dao.entity.stored_fields]
                rows: dict[str, dict[str, Any]] = {}
                for row in await dao.find(conn, {}):
                    row = dao.open(row) if secrets else dao.without_secrets(row)
                    rows[row["id"]] = {k: row[k] for k in stored if k in row}
                out[name] = rows
    return out


def export_document(store: Store, rows: Rows) -> dict[str, Any]:
    """Kong's ``db_export`` shape: flat lists, references as bare ids, keys sorted."""
    doc: dict[str, Any] = {"_format_version": "3.0", "_transform": False}
    for name, by_id in rows.items():
        if not by_id:
            continue
        entity = store.entity(name)
        foreign = {f.name for f in entity.foreign_fields}
        doc[name] = [{k: (v["id"] if k in foreign and isinstance(v, dict) else v)
                      for k, v in sorted(row.items())} for _, row in sorted(by_id.items())]
    return doc

