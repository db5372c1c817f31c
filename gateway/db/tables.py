"""SQLAlchemy tables derived from the entity schemas, plus the few bookkeeping tables.

Scalars become typed columns, structured values (arrays, maps, records) JSON (JSONB on
PostgreSQL), foreign keys ``<field>_id`` columns with real constraints. Alembic migrations are
checked against this metadata by a test (``compare_metadata`` must return ``[]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from gateway.schema import fields as m
from gateway.schema.compile import FieldSpec
from gateway.schema.entity import EntitySchema

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True),
                                                   "postgresql")
UUIDType = sa.Uuid(as_uuid=False)

metadata = sa.MetaData(naming_convention=NAMING)

# Bumped in the same transaction as every write; reloaders watch it.
meta = sa.Table(
    "ramparts_meta", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# The change log (migration 0007): per configuration row, the config version of the last write
# that touched it, deletes kept as tombstones. Written by triggers only; read by reloads.
changes = sa.Table(
    "ramparts_changes", metadata,
    sa.Column("entity_name", sa.Text, primary_key=True),
    sa.Column("entity_id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, index=True),
    sa.Column("deleted", sa.Boolean, nullable=False),
    # a table's changes since a version: SQLite, without statistics, would otherwise walk
    # the primary key's entries for that table (100,000 certificates: 0.3 s per reload)
    sa.Index(None, "entity_name", "version"),
)

# One row per (entity, tag): makes `?tags=` filters and `GET /tags` plain indexed queries.
tags = sa.Table(
    "tags", metadata,
    sa.Column("entity_id", UUIDType, primary_key=True),
    sa.Column("tag", sa.Text, primary_key=True),
    sa.Column("entity_name", sa.Text, nullable=False),
    sa.Index(None, "tag", "entity_name"),
)

# Manual health marks (PUT /upstreams/{u}/targets/{t}/healthy|unhealthy): written here so
# that, like Kong's cluster event, every node applies them; `stamp` is the config version.
target_health = sa.Table(
    "ramparts_target_health", metadata,
    sa.Column("target_id", UUIDType, sa.ForeignKey("targets.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("healthy", sa.Boolean, nullable=False),
    sa.Column("stamp", sa.BigInteger, nullable=False),
)

# The Admin API audit log (admin/audit.py): one row per write request, whatever its result.
# Not configuration: writing it never bumps the config version, reloaders never read it.
# `id` is the monotonic order (SQLite needs INTEGER for an auto-incrementing primary key;
# AUTOINCREMENT so ids of pruned rows are never reused); `created_at` is Kong-style seconds.
AuditId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
audit_log = sa.Table(
    "audit_log", metadata,
    sa.Column("id", AuditId, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=True),
    sa.Column("entity_id", sa.Text, nullable=True),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("fields", JSONType, nullable=True),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sqlite_autoincrement=True,
)

# Admin API tokens (``ramparts admin-tokens``): not Kong entities, so no endpoints, no snapshot
# and no config-version bump. Only the SHA-256 of each token is kept.
admin_tokens = sa.Table(
    "ramparts_admin_tokens", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Rollout you can see (gateway/cluster.py): each node's heartbeat, with the configuration
# version it serves. Not configuration: written with Store.write(config=False). `last_seen` is
# the database's clock (epoch seconds), so nodes with skewed clocks still agree on who is live.
nodes = sa.Table(
    "ramparts_nodes", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("applied_version", sa.BigInteger, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=True),
    sa.Column("configuration_error", sa.Text, nullable=True),
    sa.Column("last_seen", sa.Float, nullable=False, index=True),
)

_tables: dict[str, sa.Table] = {}


def column_name(spec: FieldSpec) -> str:
    return f"{spec.name}_id" if spec.kind == "foreign" else spec.name


def _column(entity: EntitySchema, spec: FieldSpec) -> sa.Column[object]:
    name = column_name(spec)
    if spec.name == "id":
        return sa.Column(name, UUIDType, primary_key=True)
    kind = spec.kind
    ctype: sa.types.TypeEngine[Any]
    if kind == "foreign":
        fk = spec.foreign
        assert fk is not None
        ondelete = "CASCADE" if fk.on_delete == "cascade" else None
        return sa.Column(name, UUIDType, sa.ForeignKey(f"{fk.entity}.id", ondelete=ondelete),
                         nullable=spec.nullable, index=True)
    if spec.has(m.Timestamp):
        ts = spec.marker(m.Timestamp)
        assert ts is not None
        ctype = sa.Float() if ts.ms else sa.BigInteger()
    elif kind == "string" and not spec.has(m.Json):
        ctype = sa.Text()
    elif kind == "integer":
        ctype = sa.BigInteger()
    elif kind == "number":
        ctype = sa.Float()
    elif kind == "boolean":
        ctype = sa.Boolean()
    else:
        ctype = JSONType
    return sa.Column(name, ctype, nullable=spec.nullable)


def define(entity: EntitySchema) -> sa.Table:
    if entity.name in _tables:
        return _tables[entity.name]
    columns: list[sa.schema.SchemaItem] = [_column(entity, f) for f in entity.stored_fields]
    columns.extend(sa.UniqueConstraint(column_name(entity.field(f)))
                   for f in entity.unique_fields)
    if entity.cache_key:
        columns.append(sa.Column("cache_key", sa.Text, nullable=True, unique=True))
    table = sa.Table(entity.name, metadata, *columns)
    _tables[entity.name] = table
    return table


def define_all(entities: Iterable[EntitySchema]) -> None:
    for entity in entities:
        define(entity)


def table(name: str) -> sa.Table:
    return _tables[name]
