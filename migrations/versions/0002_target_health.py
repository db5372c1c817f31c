"""manual target health marks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UUID = sa.Uuid(as_uuid=False)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ramparts_target_health",
        sa.Column("target_id", UUID, nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["targets.id"],
                                name=op.f("fk_ramparts_target_health_target_id"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("target_id", name=op.f("pk_ramparts_target_health")),
    )


def downgrade() -> None:
    op.drop_table("ramparts_target_health")
