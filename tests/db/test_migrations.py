"""Migrations: a freshly migrated database equals the metadata, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.db import migrate
from gateway.db.engine import create_engine
from tests.conftest import create_pg_database, drop_pg_database, pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    name = create_pg_database("ramparts_mig")
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(name)


async def test_fresh_database_matches_metadata(empty_db: str) -> None:
    engine = create_engine(empty_db)
    try:
        before = await migrate.status(engine)
        assert before.current is None
        assert before.pending[0] == "0001" and before.pending[-1] == before.head
        applied = await migrate.upgrade(engine)
        assert applied.pending == before.pending
        after = await migrate.status(engine)
        assert after.up_to_date and after.current == after.head
        async with engine.connect() as conn:
            assert await conn.run_sync(migrate.compare) == []
        again = await migrate.upgrade(engine)  # idempotent
        assert again.pending == ()
    finally:
        await engine.dispose()


async def test_nodes_migrating_together(empty_db: str) -> None:
    """Several nodes start at once: the advisory lock (PostgreSQL) lets one migrate."""
    engines = [create_engine(empty_db) for _ in range(3)]
    try:
        if empty_db.startswith("sqlite"):
            results = [await migrate.upgrade(e) for e in engines]
        else:
            results = await asyncio.gather(*(migrate.upgrade(e) for e in engines))
        steps = len((await migrate.status(create_engine("sqlite://"))).pending)
        assert sorted(len(r.pending) for r in results) == [0, 0, steps]
        assert (await migrate.status(engines[0])).up_to_date
    finally:
        for engine in engines:
            await engine.dispose()
