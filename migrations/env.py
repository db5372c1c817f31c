"""Alembic environment: migrations run on a connection handed in by ``gateway.db.migrate``."""

from __future__ import annotations

from alembic import context

from gateway import registry
from gateway.db import tables

tables.define_all(registry.build().entities.values())
target_metadata = tables.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `ramparts migrations up` (gateway.db.migrate)")

context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
