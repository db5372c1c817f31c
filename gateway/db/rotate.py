"""``ramparts keyring rotate``: re-seal every secret under the keyring's current key.

Rows are read in id order, a batch at a time; a batch that holds a value not yet sealed under
the current key (an older key, or plaintext from before the keyring) is rewritten in one small
write transaction, which bumps the configuration version as every write does, so running nodes
reload (their TLS contexts are keyed by the decrypted content, so nothing is rebuilt). Admin
API writes interleave between batches: no downtime, no long lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import sealing, tables
from gateway.db.dao import Dao
from gateway.db.store import Store, row_mapping
from gateway.errors import SecretUnavailable
from gateway.keyring import Keyring, is_sealed, key_id


@dataclass
class Report:
    current: str
    resealed: int = 0  # values sealed again under the current key
    rows: int = 0  # rows rewritten
    failures: list[str] = field(default_factory=list)  # rows that could not be decrypted


async def rotate(store: Store, batch: int = 100) -> Report:
    keyring = store.keyring
    assert keyring is not None, "rotate needs a keyring"
    report = Report(current=keyring.current_id)
    for name in store.registry.entities:
        dao = store.dao(name)
        if dao.has_secrets:
            await _rotate_entity(store, dao, keyring, batch, report)
    return report


async def _rotate_entity(store: Store, dao: Dao, keyring: Keyring, batch: int,
                         report: Report) -> None:
    table = dao.table
    last: str | None = None
    while True:
        query = sa.select(table).order_by(table.c.id).limit(batch)
        if last is not None:
            query = query.where(table.c.id > last)
        async with store.read() as conn:
            rows = [dao.to_json(row_mapping(r)) for r in (await conn.execute(query)).all()]
        if not rows:
            return
        last = str(rows[-1]["id"])
        stale = [r["id"] for r in rows if _stale(dao, r, keyring)]
        if stale:
            async with store.write() as conn:
                for ident in stale:
                    await _reseal(conn, dao, keyring, ident, report)


def secrets_of(dao: Dao, row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, stored value) of every secret in a row."""
    found: list[tuple[str, str]] = []

    def collect(value: str | None, label: str) -> str | None:
        if value is not None:
            found.append((label, value))
        return value

    sealing.map_secrets(dao.entity.record, row, collect, dao.plugin_schemas)
    return found


def _stale(dao: Dao, row: Mapping[str, Any], keyring: Keyring) -> bool:
    return any(not (is_sealed(v) and key_id(v) == keyring.current_id)
               for _, v in secrets_of(dao, row))


async def _reseal(conn: AsyncConnection, dao: Dao, keyring: Keyring, ident: str,
                  report: Report) -> None:
    """Inside the write transaction: read the row again (an Admin API write may have changed
    it since), open and re-seal its secrets, write back only the columns that hold them."""
    table = dao.table
    found = (await conn.execute(sa.select(table).where(table.c.id == ident))).first()
    if found is None:
        return  # deleted meanwhile
    stored = dao.to_json(row_mapping(found))
    if not _stale(dao, stored, keyring):
        return  # re-sealed by a write meanwhile
    try:
        plain = dao.open(stored)
    except SecretUnavailable as exc:
        report.failures.append(str(exc))
        return
    labels = secrets_of(dao, stored)
    columns = {tables.column_name(dao.entity.field(label.split(".", 1)[0]))
               for label, _ in labels}
    fresh = dao.to_row(dao.seal(plain))
    await conn.execute(sa.update(table).where(table.c.id == ident)
                       .values(**{c: fresh[c] for c in sorted(columns)}))
    report.rows += 1
    report.resealed += len(labels)
