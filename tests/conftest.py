"""Shared fixtures: every database test runs on SQLite and on the machine's PostgreSQL.

PostgreSQL runs happen in a database created for this test session (dropped at the end),
so parallel runs never collide. ``RAMPARTS_TEST_PG`` points at the server to use.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry
from gateway.db import migrate, tables
from gateway.db.store import Store
from gateway.settings.load import load
from tests import pki as pki_mod

PG_BASE = os.environ.get("RAMPARTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin_dsn() -> str:
    return PG_BASE.replace("postgresql+asyncpg://", "postgresql://")


async def _pg(statement: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn(), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def create_pg_database(prefix: str = "ramparts_test") -> str:
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {PG_BASE} is required by the test suite: {exc}")
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pg_url(name: str) -> str:
    base = _pg_admin_dsn().rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db')}/ramparts.db"
        return
    name = create_pg_database()
    try:
        yield pg_url(name)
    finally:
        drop_pg_database(name)


@pytest_asyncio.fixture(scope="session")
async def store(db_url: str) -> AsyncIterator[Store]:
    st = Store(db_url, registry.build())
    await migrate.upgrade(st.engine)
    yield st
    await st.close()


async def wipe(store: Store) -> None:
    """Empty every entity table (children first) so each test starts from nothing."""
    async with store.engine.begin() as conn:
        for table in reversed(tables.metadata.sorted_tables):
            if table.name not in ("ramparts_meta", "alembic_version"):
                await conn.execute(sa.delete(table))


@pytest_asyncio.fixture
async def empty(db_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A second, empty, migrated database of the same kind (a test may change its schema)."""
    name = None
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/empty.db"
    else:
        name = f"ramparts_empty_{secrets.token_hex(4)}"
        await _pg(f'CREATE DATABASE "{name}"')
        url = pg_url(name)
    st = Store(url, registry.build())
    await migrate.upgrade(st.engine)
    try:
        yield st
    finally:
        await st.close()
        if name is not None:
            await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def admin(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    await wipe(store)
    node = NodeInfo(settings=load(env={}), node_id=str(uuid.uuid4()))
    app = create_app(store, node)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8001") as c:
        yield c


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pki_mod.Pki:
    return pki_mod.build(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="session")
def upki(tmp_path_factory: pytest.TempPathFactory) -> pki_mod.UpstreamPki:
    return pki_mod.build_upstream(Path(tmp_path_factory.mktemp("upstream-pki")))
