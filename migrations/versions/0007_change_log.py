"""Change log: which configuration rows changed (or went) in which config version

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Triggers on every table the snapshot reads record, per row, the config version of the last
transaction that inserted, updated or deleted it (deletes stay as tombstones). Triggers, not
the DAO: every write path (Admin API, declarative import, ``config db_import``, cascading
deletes, key rotation, a node running older code) goes through them. A reload then reads only
the rows changed since the version it holds (``gateway/db/changes.py``).

The version is read from ``ramparts_meta`` inside the writing transaction, which bumped it
first while holding its row lock: writers commit in version order, so a reader whose snapshot
shows version V has seen every row stamped V or lower. ``change_epoch`` is new at each
upgrade: rows written while the triggers were absent (after a downgrade) cannot be trusted to
a reader from before, so a new epoch makes every reader read everything once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the snapshot's tables at this revision (gateway/db/load.py SNAPSHOT_ENTITIES); a later
# migration that adds one, or rebuilds one (SQLite batch mode drops triggers), adds its
# triggers again: a table without them is read whole on every reload, never trusted
TRACKED = ("services", "routes", "certificates", "snis", "plugins", "ca_certificates",
           "upstreams", "targets", "consumers", "mtls_auth_credentials", "acls", "ca_crls")
VERSION = "(SELECT coalesce(max(value), 0) FROM ramparts_meta WHERE key = 'config_version')"

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION ramparts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE ident text;
BEGIN
  IF TG_OP = 'DELETE' THEN ident := OLD.id::text; ELSE ident := NEW.id::text; END IF;
  INSERT INTO ramparts_changes (entity_name, entity_id, version, deleted)
  VALUES (TG_TABLE_NAME, ident, {VERSION}, TG_OP = 'DELETE')
  ON CONFLICT (entity_name, entity_id)
  DO UPDATE SET version = excluded.version, deleted = excluded.deleted;
  RETURN NULL;
END $$"""


def _sqlite_trigger(table: str, event: str) -> str:
    # delete + insert rather than INSERT OR REPLACE: an outer INSERT OR IGNORE would turn
    # the trigger's REPLACE into IGNORE and leave an old version behind
    ref, deleted = ("OLD", 1) if event == "DELETE" else ("NEW", 0)
    return (f'CREATE TRIGGER ramparts_changed_{table}_{event.lower()} AFTER {event} ON '
            f'"{table}" BEGIN '
            f"DELETE FROM ramparts_changes WHERE entity_name = '{table}' "
            f"AND entity_id = {ref}.id; "
            f"INSERT INTO ramparts_changes (entity_name, entity_id, version, deleted) "
            f"VALUES ('{table}', {ref}.id, {VERSION}, {deleted}); END")


def upgrade() -> None:
    op.create_table(
        "ramparts_changes",
        sa.Column("entity_name", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("entity_name", "entity_id", name=op.f("pk_ramparts_changes")),
    )
    op.create_index(op.f("ix_ramparts_changes_version"), "ramparts_changes", ["version"])
    op.create_index(op.f("ix_ramparts_changes_entity_name_version"), "ramparts_changes",
                    ["entity_name", "version"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for table in TRACKED:
            op.execute(f'CREATE TRIGGER ramparts_changed AFTER INSERT OR UPDATE OR DELETE ON '
                       f'"{table}" FOR EACH ROW EXECUTE FUNCTION ramparts_changed()')
    else:
        for table in TRACKED:
            for event in ("INSERT", "UPDATE", "DELETE"):
                op.execute(_sqlite_trigger(table, event))
    meta = sa.table("ramparts_meta", sa.column("key", sa.Text), sa.column("value", sa.BigInteger))
    op.execute(sa.delete(meta).where(meta.c.key == "change_epoch"))
    op.execute(sa.insert(meta).values(key="change_epoch", value=secrets.randbits(62)))


def downgrade() -> None:
    meta = sa.table("ramparts_meta", sa.column("key", sa.Text), sa.column("value", sa.BigInteger))
    op.execute(sa.delete(meta).where(meta.c.key == "change_epoch"))
    if op.get_bind().dialect.name == "postgresql":
        for table in TRACKED:
            op.execute(f'DROP TRIGGER IF EXISTS ramparts_changed ON "{table}"')
        op.execute("DROP FUNCTION IF EXISTS ramparts_changed()")
    else:
        for table in TRACKED:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS ramparts_changed_{table}_{event}")
    op.drop_index(op.f("ix_ramparts_changes_entity_name_version"),
                  table_name="ramparts_changes")
    op.drop_index(op.f("ix_ramparts_changes_version"), table_name="ramparts_changes")
    op.drop_table("ramparts_changes")
