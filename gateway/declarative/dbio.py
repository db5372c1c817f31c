"""A declarative configuration into the database (``db_import``) and back out (``export``).

Import upserts every entry in one transaction through the DAOs (Kong's checks against what the
database already holds, the config version bumped once): all or nothing, nothing deleted.
Export is one consistent read (REPEATABLE READ on PostgreSQL), in Kong's export format: flat
top-level lists, references as bare ids, nulls kept; secrets decrypted through the DAO's
read path, and left out unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from gateway.db import tables
from gateway.db.store import Store
from gateway.declarative import order
from gateway.declarative.parse import Config, put
from gateway.errors import DbError, FieldErrors, InvalidDeclarativeConfig

Rows = dict[str, dict[str, dict[str, Any]]]
Progress = Callable[[int, int], None]


async def db_import(store: Store, config: Config, progress: Progress | None = None
                    ) -> dict[str, int]:
    """Upsert every entry; a refusal names the entry where it was written."""
    total = sum(len(entries) for entries in config.entries.values())
    done = 0
    counts: dict[str, int] = {}
    async with store.write() as conn:
        for entity, entries in config.entries.items():
            dao = store.dao(entity)
            for entry in entries:
                try:
                    await dao.upsert_in(conn, entry.values["id"], entry.data)
                except DbError as exc:
                    errors: FieldErrors = {}
                    put(errors, entry.path, {"@entity": [exc.message]})
                    raise InvalidDeclarativeConfig(errors) from exc
                done += 1
                if progress is not None and (done % 100 == 0 or done == total):
                    progress(done, total)
            counts[entity] = len(entries)
    return counts


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


async def replace(store: Store, config: Config) -> None:
    """The whole configuration replaced in one transaction (DB-less ``POST /config``):
    readers, the reloader included, see the old rows or the new ones, never a mix."""
    names = entity_names(store)
    async with store.write() as conn:
        for name in reversed(names):  # children first
            await conn.execute(sa.delete(tables.table(name)))
        await conn.execute(sa.delete(tables.tags))
        for entity, entries in config.entries.items():
            dao = store.dao(entity)
            for entry in entries:
                try:
                    await dao.upsert_in(conn, entry.values["id"], entry.data)
                except DbError as exc:
                    errors: FieldErrors = {}
                    put(errors, entry.path, {"@entity": [exc.message]})
                    raise InvalidDeclarativeConfig(errors) from exc
