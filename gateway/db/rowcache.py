"""Reloads that read only what changed: rows kept from the previous load, by fingerprint.

A reload reads every table inside one transaction (its consistency is the point), but most
rows are the ones the previous load saw. Each table is first read raw (the driver's values,
no type processing); a row whose fingerprint equals the one remembered under its id is
reused as it was opened last time (the very same object, which also lets the snapshot build
reuse what it derived from it). Only new and changed rows are converted (the columns'
result processors, as a typed select would) and decrypted. With 10,000 certificates a
one-certificate change converts and decrypts one row instead of 10,000.

The fingerprint is Python's 64-bit hash of the raw row (randomised per process): a changed
row is taken for unchanged with probability 2**-64; the full raw rows are not kept because
with 100,000 certificates they would double the memory the rows take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db.dao import Dao, Row
from gateway.db.store import row_mapping

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
        position = list(table.columns).index(keys[0])
        result = await conn.exec_driver_sql(_raw_select(conn, table))
        # the driver's column types, as a typed select hands them to the processors
        coltypes = [d[1] for d in result.cursor.description] if result.cursor else None
        raw = result.all()
        previous = self._tables.get(dao.entity.name, {})
        convert = _converter(conn.dialect, table, coltypes)
        kept: dict[Any, tuple[int, Row]] = {}
        out: list[Row] = []
        for r in raw:
            ident, fp = r[position], fingerprint(r)
            hit = previous.get(ident)
            if hit is not None and hit[0] == fp:
                out.append(hit[1])
                kept[ident] = hit
                self.reused += 1
                continue
            opened = open_row(dao, dao.to_json(convert(r)))
            if opened is None:
                continue
            out.append(opened[0])
            self.converted += 1
            if opened[1]:
                kept[ident] = (fp, opened[0])
        self._tables[dao.entity.name] = kept
        return out


def _converter(dialect: sa.Dialect, table: sa.Table, coltypes: list[Any] | None
               ) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Raw driver values -> what a typed select returns (the columns' result processors:
    UUIDs as text, JSON parsed, SQLite's integers as booleans)."""
    names = [c.name for c in table.columns]
    types = coltypes or [None] * len(names)
    processors = [c.type.dialect_impl(dialect).result_processor(dialect, t)
                  for c, t in zip(table.columns, types, strict=True)]

    def convert(raw: Sequence[Any]) -> dict[str, Any]:
        return {name: value if process is None or value is None else process(value)
                for name, process, value in zip(names, processors, raw, strict=True)}

    return convert


def _raw_select(conn: AsyncConnection, table: sa.Table) -> str:
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c.name) for c in table.columns)
    return f"SELECT {columns} FROM {quote(table.name)}"  # names from our schema, quoted
