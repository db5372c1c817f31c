"""Cluster nodes' heartbeats: the configuration version each node serves

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ramparts_nodes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("applied_version", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", sa.Float(), nullable=True),
        sa.Column("configuration_error", sa.Text(), nullable=True),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ramparts_nodes")),
    )
    op.create_index(op.f("ix_ramparts_nodes_last_seen"), "ramparts_nodes", ["last_seen"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ramparts_nodes_last_seen"), table_name="ramparts_nodes")
    op.drop_table("ramparts_nodes")
