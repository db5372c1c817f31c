"""gateway/db/engine.py: SQL parameters (private keys) never reach a log line or an exception
message, on either database, and a new SQLite database is private to its owner."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from gateway.db.engine import create_engine

SECRET = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAAS\n"


async def test_parameters_are_in_no_log_line_and_no_error(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger, as log_level: debug sets it
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT :secret"), {"secret": SECRET})
            with pytest.raises(DBAPIError) as failed:
                await conn.execute(sa.text("INSERT INTO no_such_table VALUES (:secret)"),
                                   {"secret": SECRET})
    finally:
        await engine.dispose()
    assert "no_such_table" in str(failed.value)  # the statement is there, for diagnosis
    assert "MIIEvQ" not in str(failed.value)
    assert "MIIEvQ" not in caplog.text


def test_a_new_sqlite_database_is_0600(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        create_engine(f"sqlite:///{tmp_path}/new.db")
        old = tmp_path / "old.db"
        old.write_bytes(b"")
        os.chmod(old, 0o644)  # made by an older version
        create_engine(f"sqlite:///{old}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.db").stat().st_mode) == 0o600
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
