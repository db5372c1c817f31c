"""Database URLs and async engines for the two supported backends.

``sqlite:///ramparts.db`` (embedded default) and ``postgresql://user@host:port/db`` are what
users write; the driver parts (aiosqlite, asyncpg) are ours to add.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database URL scheme '{scheme}'")


def dialect_of(url: str) -> str:
    return "sqlite" if url.lower().startswith("sqlite") else "postgresql"


PRIVATE_FILE = 0o600
# Loggers that write SQL parameters (private keys): aiosqlite logs every call with its
# arguments at DEBUG, SQLAlchemy statements and parameters at INFO.
DRIVER_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg")


def quiet_driver_logs() -> None:
    """Hold the database layers' loggers at WARNING whatever the root level is."""
    for name in DRIVER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def create_engine(url: str, **options: Any) -> AsyncEngine:
    target = async_url(url)
    # Rows carry private keys: SQL parameters must never reach a log line or an exception
    # message, whatever the log level (SQLAlchemy logs them at INFO, echo or not).
    options.setdefault("hide_parameters", True)
    options.setdefault("echo", False)
    quiet_driver_logs()
    if dialect_of(url) == "sqlite":
        private_sqlite_files(database_name(url))
        engine = create_async_engine(target, connect_args={"timeout": 30}, **options)
        _sqlite_events(engine)
        return engine
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 10)
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(target, connect_args={"timeout": 5,
                                                     "command_timeout": 30}, **options)


def _sqlite_events(engine: AsyncEngine) -> None:
    """SQLite needs foreign keys switched on, WAL for concurrent readers, and explicit
    ``BEGIN IMMEDIATE`` so a write transaction takes the write lock up front (pysqlite's
    deferred BEGIN can fail with 'database is locked' mid-transaction)."""

    @sa.event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def database_name(url: str) -> str | None:
    return make_url(async_url(url)).database


def private_sqlite_files(path: str | None) -> None:
    """The database file exists and is 0600 before SQLite first opens it. SQLite gives its
    -wal and -shm files the database file's permissions; existing ones are tightened too
    (a database created by an older version)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    except OSError:
        return  # SQLite will say why it cannot open it, where the caller reports errors
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, PRIVATE_FILE)
