"""Reloads that read only what changed: rows kept from the previous load, by fingerprint.

A reload reads every table inside one transaction (its consistency is the point), but most
rows are the ones the previous load saw. Each table is first read raw (the driver's values,
no type processing); a row whose fingerprint equals the one remembered under its id is
reused as it was opened last time (the very same object, which also lets the snapshot build
reuse what it derived from it). Only new and changed rows are read again through the
typed path, converted and decrypted, in the same transaction. With 10,000 certificates a
one-certificate change converts and decrypts one row instead of 10,000.

The fingerprint is Python's 64-bit hash of the raw row (randomised per process): a changed
row is taken for unchanged with probability 2**-64; the full raw rows are not kept because
with 100,000 certificates they would double the memory the rows take.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.dao import Dao, Row
from gateway.db.store import row_mapping

# the typed re-read of changed rows goes by id in chunks (SQLite's bound-parameter limit);
# beyond this share of changed rows one full typed read is cheaper
ID_CHUNK = 500
FULL_READ_SHARE = 0.5

# a stored row -> (the row to serve, whether it may be reused), or None: left out (the
# rows that cannot be opened are neither served nor cached: the next load tries again)
Opener = Callable[[Dao, Row], tuple[Row, bool] | None]


def fingerprint(raw: Sequence[Any]) -> int:
    try:
        return hash(raw)  # a row of str/int/float/None (SQLite): hashed in C
    except TypeError:
        return hash(tuple(_hashable(v) for v in raw))


def _hashable(value: Any) -> Any:
    if isinstance(value, list):  # PostgreSQL arrays arrive as lists
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return repr(value)
    return value


class RowCache:
    """Per table: id -> (fingerprint, opened row) from the previous load. Owned by one
    reloader; ``clear`` when the way rows are opened changes (the keyring)."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[Any, tuple[int, Row]]] = {}
        self.reused = 0  # rows reused by the last load (the benchmark reports it)
        self.converted = 0

    def clear(self) -> None:
        self._tables.clear()

    def begin(self) -> None:
        self.reused = self.converted = 0

    async def read(self, conn: AsyncConnection, dao: Dao, open_row: Opener) -> list[Row]:
        table = dao.table
        keys = list(table.primary_key.columns)
        if len(keys) != 1:  # not an entity table: nothing to key rows by
            rows = (await conn.execute(sa.select(table))).all()
            return [o[0] for o in (open_row(dao, dao.to_json(row_mapping(r))) for r in rows)
                    if o is not None]
        key = keys[0]
        position = list(table.columns).index(key)
        raw = (await conn.exec_driver_sql(_raw_select(conn, table))).all()
        previous = self._tables.get(dao.entity.name, {})
        prints = [fingerprint(r) for r in raw]
        changed = [r[position] for r, fp in zip(raw, prints, strict=True)
                   if previous.get(r[position], (None,))[0] != fp]
        fresh = await self._typed(conn, dao, key, changed, len(raw), open_row)
        kept: dict[Any, tuple[int, Row]] = {}
        out: list[Row] = []
        for r, fp in zip(raw, prints, strict=True):
            ident = r[position]
            hit = previous.get(ident)
            if hit is not None and hit[0] == fp:
                out.append(hit[1])
                kept[ident] = hit
                self.reused += 1
                continue
            opened = fresh.get(_norm(ident))
            if opened is not None:
                out.append(opened[0])
                self.converted += 1
                if opened[1]:
                    kept[ident] = (fp, opened[0])
        self._tables[dao.entity.name] = kept
        return out

    async def _typed(self, conn: AsyncConnection, dao: Dao, key: sa.Column[Any],
                     ids: list[Any], total: int, open_row: Opener
                     ) -> dict[str, tuple[Row, bool]]:
        """The changed rows through the typed path, opened, by normalised id."""
        table = dao.table
        if not ids:
            return {}
        if len(ids) > total * FULL_READ_SHARE:
            results = [(await conn.execute(sa.select(table))).all()]
        else:
            if isinstance(key.type, sa.Uuid):  # raw: 32 hex digits on SQLite, UUID on asyncpg
                ids = [str(uuid.UUID(str(i))) for i in ids]
            results = [(await conn.execute(sa.select(table).where(
                key.in_(ids[i:i + ID_CHUNK])))).all() for i in range(0, len(ids), ID_CHUNK)]
        out: dict[str, tuple[Row, bool]] = {}
        for result in results:
            for r in result:
                mapping = row_mapping(r)
                opened = open_row(dao, dao.to_json(mapping))
                if opened is not None:
                    out[_norm(mapping[key.name])] = opened
        return out


def _norm(ident: Any) -> str:
    return str(ident).replace("-", "").lower()


def _raw_select(conn: AsyncConnection, table: sa.Table) -> str:
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c.name) for c in table.columns)
    return f"SELECT {columns} FROM {quote(table.name)}"  # names from our schema, quoted
