"""Run Alembic migrations from inside our event loop, one node at a time.

On PostgreSQL a session advisory lock makes nodes that start together take turns: the first
migrates, the others then find nothing pending.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

ADVISORY_LOCK_KEY = 0x52414D50  # "RAMP"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", os.path.dirname(migrations.__file__))
    return cfg


@dataclass(frozen=True, slots=True)
class Status:
    current: str | None
    head: str | None
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return not self.pending


def _status(sync_conn: sa.Connection) -> Status:
    script = ScriptDirectory.from_config(alembic_config())
    current = MigrationContext.configure(sync_conn).get_current_revision()
    head = script.get_current_head()
    pending = [rev.revision for rev in script.iterate_revisions(head, current)]
    return Status(current=current, head=head, pending=tuple(reversed(pending)))


def _upgrade(sync_conn: sa.Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")


async def status(engine: AsyncEngine) -> Status:
    async with engine.connect() as conn:
        return await conn.run_sync(_status)


async def upgrade(engine: AsyncEngine) -> Status:
    """Apply every pending migration; returns the status before the upgrade."""
    async with engine.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        if pg:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            await conn.commit()
        try:
            before = await conn.run_sync(_status)
            if before.pending:
                await conn.run_sync(_upgrade)
                await conn.commit()
            return before
        finally:
            if pg:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"),
                                   {"k": ADVISORY_LOCK_KEY})
                await conn.commit()


def compare(sync_conn: sa.Connection) -> list[Any]:
    """Differences between the migrated database and the metadata (should be empty)."""
    from alembic.autogenerate import compare_metadata

    from gateway.db import tables

    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, tables.metadata))
