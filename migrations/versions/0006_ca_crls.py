"""CRLs uploaded for CA certificates (mtls-auth revocation)

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UUID = sa.Uuid(as_uuid=False)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ca_crls",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("ca_certificate_id", UUID, nullable=False),
        sa.Column("crl", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["ca_certificate_id"], ["ca_certificates.id"],
                                name=op.f("fk_ca_crls_ca_certificate_id"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_crls")),
        sa.UniqueConstraint("ca_certificate_id", name=op.f("uq_ca_crls_ca_certificate_id")),
    )
    op.create_index(op.f("ix_ca_crls_ca_certificate_id"), "ca_crls", ["ca_certificate_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ca_crls_ca_certificate_id"), table_name="ca_crls")
    op.drop_table("ca_crls")
