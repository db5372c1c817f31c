"""The audit log's rows: append, prune by age, page newest first.

Audit rows are not configuration: they are written with ``store.write(config=False)`` (no
version bump, no NOTIFY, no reload) and no snapshot reads them. Retention is enforced twice:
the write path deletes one small batch of expired rows now and then (``prune_some``: cheap,
bounded, in its own transaction so it can never cost an audit row), and a background task
(``prune_forever``) removes the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.db import tables
from gateway.db.dao import Page, encode_offset, offset_key
from gateway.db.store import Store, row_mapping
from gateway.errors import InvalidOffset

log = logging.getLogger("ramparts")

DAY = 86400
PRUNE_BATCH = 500  # rows an append may delete: keeps the write path's extra cost bounded
PRUNE_EVERY = 3600.0  # seconds between background prunes


@dataclass(frozen=True, slots=True)
class Entry:
    """One audited write request (``fields`` already masked)."""

    created_at: int
    actor: str
    entity: str | None
    entity_id: str | None
    operation: str
    fields: Mapping[str, Any] | None
    method: str
    path: str
    status: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Filter:
    """``GET /audit_log`` filters; ``since``/``until`` are inclusive epoch seconds."""

    entity: str | None = None
    operation: str | None = None
    actor: str | None = None
    since: int | None = None
    until: int | None = None


def expired_before(now: int, retention_days: int) -> int | None:
    """Rows created before this second are expired; ``None``: keep forever (retention 0)."""
    return None if retention_days <= 0 else now - retention_days * DAY


async def append(store: Store, entry: Entry) -> None:
    async with store.write(config=False) as conn:
        await conn.execute(sa.insert(tables.audit_log).values(**dataclasses.asdict(entry)))


async def _prune_batch(conn: AsyncConnection, before: int) -> int:
    t = tables.audit_log
    # SKIP LOCKED (PostgreSQL): concurrent prunes take disjoint rows, never wait or deadlock
    batch = sa.select(t.c.id).where(t.c.created_at < before).limit(PRUNE_BATCH) \
        .with_for_update(skip_locked=True)
    result = await conn.execute(sa.delete(t).where(t.c.id.in_(batch)))
    return int(result.rowcount)


async def prune_some(store: Store, now: int, retention_days: int) -> int:
    """At most one batch of expired rows: the write path's share of retention."""
    before = expired_before(now, retention_days)
    if before is None:
        return 0
    async with store.write(config=False) as conn:
        return await _prune_batch(conn, before)


async def prune(store: Store, now: int, retention_days: int) -> int:
    """Delete every expired row, one batch per transaction (writers never wait long)."""
    before = expired_before(now, retention_days)
    total = 0
    while before is not None:
        async with store.write(config=False) as conn:
            deleted = await _prune_batch(conn, before)
        total += deleted
        if deleted < PRUNE_BATCH:
            break
    return total


async def prune_forever(store: Store, retention_days: int, every: float = PRUNE_EVERY,
                        clock: Callable[[], float] = time.time) -> None:
    """The background prune: now, then every ``every`` seconds; a failure (database down)
    is logged and retried at the next round."""
    while retention_days > 0:
        try:
            deleted = await prune(store, int(clock()), retention_days)
            if deleted:
                log.info("audit log: %d rows older than %d days removed", deleted,
                         retention_days)
        except Exception as exc:
            log.warning("audit log prune failed: %s", exc)
        await asyncio.sleep(every)


async def page(conn: AsyncConnection, where: Filter, *, size: int, offset: str | None
               ) -> Page:
    t = tables.audit_log
    query = sa.select(t).where(*_conditions(where)).order_by(t.c.id.desc()).limit(size + 1)
    if offset is not None:
        query = query.where(t.c.id < decode_offset(offset))
    rows = [dict(row_mapping(r)) for r in (await conn.execute(query)).all()]
    next_offset = encode_offset(rows[size - 1]["id"]) if len(rows) > size else None
    return Page(rows[:size], next_offset)


def _conditions(where: Filter) -> list[sa.ColumnElement[bool]]:
    t = tables.audit_log
    conds: list[sa.ColumnElement[bool]] = []
    for name in ("entity", "operation", "actor"):
        value = getattr(where, name)
        if value is not None:
            conds.append(t.c[name] == value)
    if where.since is not None:
        conds.append(t.c.created_at >= where.since)
    if where.until is not None:
        conds.append(t.c.created_at <= where.until)
    return conds


def decode_offset(token: str) -> int:
    """Kong's token shape (see ``dao.offset_key``) around our integer ids."""
    key = offset_key(token)
    if type(key) is not int:
        raise InvalidOffset(token)
    return key
