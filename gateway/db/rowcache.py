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

With the change log (migration 0007, ``gateway/db/changes.py``) a reload does not even read
the unchanged rows: ``follow`` reads the rows written since the version the cache holds and
drops the deleted ones. A count of the table's rows checks the result; any doubt (a table the
cache never read whole, rows it could not open, a count that differs) reads the table whole.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import gcpause
from gateway.db import changes
from gateway.db.dao import Dao, Row
from gateway.db.store import row_mapping

log = logging.getLogger("ramparts.reload")

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
    """Per table: id -> (fingerprint, opened row) from the previous load, and the ids of rows
    left out or served as stand-ins (read again next time). Owned by one reloader; ``clear``
    when the way rows are opened changes (the keyring)."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[Any, tuple[int, Row]]] = {}
        self._absent: dict[str, set[Any]] = {}
        # per table the list the last load served: served again, the very same list, when
        # the table did not change (the build then skips it with one identity check)
        self._served: dict[str, list[Row]] = {}
        self.mark: changes.Mark | None = None  # the version the cached rows are exactly
        self.reused = 0  # rows reused by the last load (the benchmark reports it)
        self.converted = 0
        self.read_rows = 0  # rows the last load read from the database
        self.whole: list[str] = []  # tables the last load read whole

    def clear(self) -> None:
        self._tables.clear()
        self._absent.clear()
        self._served.clear()
        self.mark = None

    def begin(self) -> None:
        """A load starts: until it completes, the cache is at no known version."""
        self.reused = self.converted = self.read_rows = 0
        self.whole = []
        self.mark = None

    async def read(self, conn: AsyncConnection, dao: Dao, open_row: Opener) -> list[Row]:
        table = dao.table
        keys = list(table.primary_key.columns)
        self.whole.append(dao.entity.name)
        if len(keys) != 1:  # not an entity table: nothing to key rows by
            rows = (await conn.execute(sa.select(table))).all()
            self.read_rows += len(rows)
            return [o[0] for o in (open_row(dao, dao.to_json(row_mapping(r))) for r in rows)
                    if o is not None]
        result = await conn.exec_driver_sql(_raw_select(conn, table))
        # the driver's column types, as a typed select hands them to the processors
        coltypes = [d[1] for d in result.cursor.description] if result.cursor else None
        previous = self._tables.get(dao.entity.name, {})
        kept: dict[Any, tuple[int, Row]] = {}
        absent: set[Any] = set()
        raw = result.all()
        with gcpause.paused():  # a synchronous call: the pause ends with the conversion
            out, _ = self._merge(conn.dialect, dao, raw, coltypes, previous, kept, absent,
                                 open_row)
        self._tables[dao.entity.name] = kept
        self._absent[dao.entity.name] = absent
        self._served[dao.entity.name] = out
        return out

    async def follow(self, conn: AsyncConnection, dao: Dao, log_since: changes.Since,
                     open_row: Opener) -> list[Row]:
        """The table at the load's version from the cached rows and the change log."""
        name, table = dao.entity.name, dao.table
        previous, served = self._tables.get(name), self._served.get(name)
        if previous is None or served is None or self._absent.get(name) or \
                name not in log_since.tracked:
            return await self.read(conn, dao, open_row)
        if name not in log_since.deleted and name not in log_since.changed and \
                log_since.counts.get(name) == len(previous):
            self.reused += len(previous)
            return served
        kept = previous
        if name in log_since.deleted or name in log_since.changed:
            kept = dict(previous)
            for ident in log_since.deleted.get(name, ()):
                kept.pop(ident, None)
        absent: set[Any] = set()
        stand_ins: list[Row] = []
        if name in log_since.changed:
            raw, coltypes = await changes.changed_rows(conn, table, log_since.mark.version)
            position = _id_position(table)
            for r in raw:  # a changed row moves to the end (the build sorts what it needs)
                kept.pop(r[position], None)
            self.reused += len(kept)
            _, stand_ins = self._merge(conn.dialect, dao, raw, coltypes, {}, kept, absent,
                                       open_row)
        else:
            self.reused += len(kept)
        if log_since.counts.get(name) != len(kept) + len(absent):
            log.warning("%s: the change log and the table disagree; reading it whole", name)
            return await self.read(conn, dao, open_row)
        self._tables[name] = kept
        self._absent[name] = absent
        out = self._served[name] = [row for _, row in kept.values()] + stand_ins
        return out

    def _merge(self, dialect: sa.Dialect, dao: Dao, raw: Sequence[Sequence[Any]],
               coltypes: list[Any] | None, previous: dict[Any, tuple[int, Row]],
               kept: dict[Any, tuple[int, Row]], absent: set[Any], open_row: Opener
               ) -> tuple[list[Row], list[Row]]:
        """Raw rows into ``kept`` (reused by fingerprint from ``previous`` or opened anew).
        Returns the rows to serve in order, and those of them not kept (stand-ins)."""
        position = _id_position(dao.table)
        convert = _converter(dialect, dao.table, coltypes)
        out: list[Row] = []
        stand_ins: list[Row] = []
        self.read_rows += len(raw)
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
                absent.add(ident)
                continue
            out.append(opened[0])
            self.converted += 1
            if opened[1]:
                kept[ident] = (fp, opened[0])
            else:
                absent.add(ident)
                stand_ins.append(opened[0])
        return out, stand_ins


def _id_position(table: sa.Table) -> int:
    return list(table.columns).index(next(iter(table.primary_key.columns)))


def _converter(dialect: sa.Dialect, table: sa.Table, coltypes: list[Any] | None
               ) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Raw driver values -> what a typed select returns (the columns' result processors:
    UUIDs as text, JSON parsed, SQLite's integers as booleans)."""
    names = [c.name for c in table.columns]
    types = coltypes or [None] * len(names)
    processors = [_hex_uuid if _stored_as_hex(dialect, c) else
                  c.type.dialect_impl(dialect).result_processor(dialect, t)
                  for c, t in zip(table.columns, types, strict=True)]

    def convert(raw: Sequence[Any]) -> dict[str, Any]:
        return {name: value if process is None or value is None else process(value)
                for name, process, value in zip(names, processors, raw, strict=True)}

    return convert


def _stored_as_hex(dialect: sa.Dialect, column: sa.Column[Any]) -> bool:
    """A UUID column that SQLite stores as 32 hex digits (SQLAlchemy's non-native Uuid)."""
    return isinstance(column.type, sa.Uuid) and not column.type.as_uuid and \
        not (dialect.supports_native_uuid and column.type.native_uuid)


def _hex_uuid(value: str) -> str:
    """What SQLAlchemy's processor returns (``str(uuid.UUID(value))``) in a fifth of the
    time: a load of 10,000 certificates converts 50,000 of them."""
    if len(value) != 32:
        return str(uuid.UUID(value))
    v = value.lower()
    return f"{v[:8]}-{v[8:12]}-{v[12:16]}-{v[16:20]}-{v[20:]}"


def _raw_select(conn: AsyncConnection, table: sa.Table) -> str:
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c.name) for c in table.columns)
    return f"SELECT {columns} FROM {quote(table.name)}"  # names from our schema, quoted
