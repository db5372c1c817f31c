"""Admin API tokens (hashed), managed by ``ramparts admin-tokens``

Revision ID: 0004
Revises: 0002 (0003, the audit log, is written in parallel: the merge re-points this to it)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ramparts_admin_tokens",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ramparts_admin_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_ramparts_admin_tokens_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("ramparts_admin_tokens")
