"""The audit log store: offsets, expiry and the background prune task."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from gateway.db import audit as audit_log
from gateway.db import tables
from gateway.db.dao import encode_offset
from gateway.db.store import Store
from gateway.errors import InvalidOffset
from gateway.tasks import spawn
from tests.conftest import wipe


@pytest.mark.parametrize("last_id", [1, 42, 2**53])
def test_offsets_round_trip(last_id: int) -> None:
    assert audit_log.decode_offset(encode_offset(last_id)) == last_id


@pytest.mark.parametrize(("token", "reason"), [
    ("a", "bad base64 encoding"),
    ("bm9wZQ", "bad json encoding"),       # "nope"
    ("WyJhIl0", "bad base64 encoding"),    # ["a"]: not one of our ids
    ("WzEsMl0", "bad base64 encoding"),    # [1,2]
    ("W3RydWVd", "bad base64 encoding"),   # [true]
])
def test_foreign_offsets_are_refused(token: str, reason: str) -> None:
    with pytest.raises(InvalidOffset) as info:
        audit_log.decode_offset(token)
    assert info.value.message == f"'{token}' is not a valid offset: {reason}"


@pytest.mark.parametrize(("days", "expected"), [(0, None), (1, 1000 - 86400),
                                                (30, 1000 - 30 * 86400)])
def test_expiry(days: int, expected: int | None) -> None:
    assert audit_log.expired_before(1000, days) == expected


async def count(store: Store) -> int:
    async with store.read() as conn:
        return int((await conn.execute(
            sa.select(sa.func.count()).select_from(tables.audit_log))).scalar_one())


async def test_background_task_prunes_while_it_runs(store: Store) -> None:
    await wipe(store)
    now = int(time.time())
    async with store.write(config=False) as conn:
        await conn.execute(sa.insert(tables.audit_log), [
            {"created_at": now - age * 86400, "actor": "peer:x", "operation": "create",
             "method": "POST", "path": "/services", "status": 201} for age in (9, 8, 1)])
    task = spawn(audit_log.prune_forever(store, retention_days=7, every=0.05), "test-prune")
    try:
        deadline = time.monotonic() + 20
        while await count(store) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await count(store) == 1
        # rows that expire later are removed by a later round of the same task
        async with store.write(config=False) as conn:
            await conn.execute(sa.insert(tables.audit_log).values(
                created_at=now - 30 * 86400, actor="peer:x", operation="create",
                method="POST", path="/services", status=201))
        while await count(store) != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await count(store) == 1 and not task.done()
    finally:
        task.cancel()


async def test_retention_zero_needs_no_task(store: Store) -> None:
    await asyncio.wait_for(audit_log.prune_forever(store, retention_days=0), timeout=5)
