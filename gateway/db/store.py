"""The store: transactions, the config version, and one DAO per entity.

Every write runs in one transaction that first bumps ``config_version`` (on PostgreSQL that
row lock also serialises writers, so the uniqueness checks below cannot race) and, on
PostgreSQL, sends ``NOTIFY ramparts_config`` so every node's reloader wakes up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.db import changes, tables
from gateway.db.engine import create_engine, dialect_of
from gateway.errors import DatabaseUnavailable
from gateway.keyring import Keyring
from gateway.registry import Registry
from gateway.schema.entity import EntitySchema

if TYPE_CHECKING:
    from gateway.db.dao import Dao

NOTIFY_CHANNEL = "ramparts_config"
VERSION_KEY = "config_version"


class Store:
    """Owns the engine; hands out DAOs and transactions."""

    def __init__(self, url: str, registry: Registry, engine: AsyncEngine | None = None,
                 keyring: Keyring | None = None) -> None:
        self.url = url
        self.keyring = keyring  # None: secrets are stored as given (the default)
        self.dialect = dialect_of(url)
        self.registry = registry
        self.engine = engine or create_engine(url)
        # SQLite has one writer at a time; queue writers here instead of in SQLite's lock.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._daos: dict[str, Dao] = {}
        # called after each committed write: the local reloader wakes up at once
        self.on_commit: list[Callable[[], None]] = []
        # the version of this process's last committed write (/status knows it without a query)
        self.committed_version: int | None = None
        tables.define_all(registry.entities.values())

    def dao(self, name: str) -> Dao:
        dao = self._daos.get(name)
        if dao is None:
            from gateway.db.dao import dao_for  # the DAO module imports this one

            dao = self._daos[name] = dao_for(self, self.registry.entities[name])
        return dao

    def entity(self, name: str) -> EntitySchema:
        return self.registry.entities[name]

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with _unavailable_as_503(), self.engine.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write(self, *, config: bool = True) -> AsyncIterator[AsyncConnection]:
        """One write transaction; bumps the config version before anything else.
        ``config=False`` writes rows that are not configuration (the audit log): no bump,
        no NOTIFY, no reload — but the same writer queue on SQLite."""
        async with _unavailable_as_503():
            lock = self._write_lock or contextlib.nullcontext()
            async with lock:
                conn_cm = self.engine.connect()
                async with conn_cm as conn:
                    if self.dialect == "sqlite":
                        conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
                    async with conn.begin():
                        version = await self._bump(conn) if config else None
                        yield conn
        if version is not None:
            self.committed_version = max(self.committed_version or 0, version)
            for callback in self.on_commit:
                callback()

    async def _bump(self, conn: AsyncConnection) -> int:
        meta = tables.meta
        result = await conn.execute(
            sa.update(meta).where(meta.c.key == VERSION_KEY)
            .values(value=meta.c.value + 1).returning(meta.c.value))
        version = result.scalar_one_or_none()
        if version is None:  # first write on a fresh database
            await conn.execute(sa.insert(meta).values(key=VERSION_KEY, value=1))
            version = 1
        if self.dialect == "postgresql":
            await conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, str(version))))
        if version % changes.PRUNE_EVERY == 0:
            await changes.prune(conn, int(version))
        return int(version)

    async def config_version(self) -> int:
        async with self.read() as conn:
            return await read_version(conn)

    async def close(self) -> None:
        await self.engine.dispose()


async def read_version(conn: AsyncConnection) -> int:
    meta = tables.meta
    value = (await conn.execute(sa.select(meta.c.value).where(meta.c.key == VERSION_KEY))
             ).scalar_one_or_none()
    return int(value or 0)


def is_unavailable(exc: BaseException) -> bool:
    """Connection-level failures (server down, refused, reset), not SQL errors."""
    if isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, OperationalError):
            text = str(exc.orig).lower()
            return "locked" not in text  # sqlite 'database is locked' is contention, not outage
        return is_unavailable(exc.orig) if exc.orig is not None else False
    name = type(exc).__name__
    return name in ("CannotConnectNowError", "ConnectionDoesNotExistError",
                    "InterfaceError", "ConnectionRefusedError", "PostgresConnectionError")


@contextlib.asynccontextmanager
async def _unavailable_as_503() -> AsyncIterator[None]:
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable(f"database unreachable: {_short(exc)}") from exc
        raise


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def row_mapping(row: Any) -> Mapping[str, Any]:
    mapping: Mapping[str, Any] = row._mapping
    return mapping
