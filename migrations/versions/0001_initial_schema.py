"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
UUID = sa.Uuid(as_uuid=False)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ca_certificates",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("cert", sa.Text(), nullable=False),
        sa.Column("cert_digest", sa.Text(), nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_certificates")),
        sa.UniqueConstraint("cert_digest", name=op.f("uq_ca_certificates_cert_digest")),
    )
    op.create_table(
        "certificates",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("cert", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("cert_alt", sa.Text(), nullable=True),
        sa.Column("key_alt", sa.Text(), nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
    )
    op.create_table(
        "consumers",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("custom_id", sa.Text(), nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consumers")),
        sa.UniqueConstraint("custom_id", name=op.f("uq_consumers_custom_id")),
        sa.UniqueConstraint("username", name=op.f("uq_consumers_username")),
    )
    op.create_table(
        "ramparts_meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ramparts_meta")),
    )
    op.create_table(
        "tags",
        sa.Column("entity_id", UUID, nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        sa.Column("entity_name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("entity_id", "tag", name=op.f("pk_tags")),
    )
    op.create_index(op.f("ix_tags_tag_entity_name"), "tags", ["tag", "entity_name"], unique=False)
    op.create_table(
        "acls",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("consumer_id", UUID, nullable=False),
        sa.Column("group", sa.Text(), nullable=False),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("cache_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consumer_id"], ["consumers.id"], name=op.f("fk_acls_consumer_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acls")),
        sa.UniqueConstraint("cache_key", name=op.f("uq_acls_cache_key")),
    )
    op.create_index(op.f("ix_acls_consumer_id"), "acls", ["consumer_id"], unique=False)
    op.create_table(
        "mtls_auth_credentials",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("consumer_id", UUID, nullable=True),
        sa.Column("subject_name", sa.Text(), nullable=False),
        sa.Column("ca_certificate_id", UUID, nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("cache_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ca_certificate_id"],
            ["ca_certificates.id"],
            name=op.f("fk_mtls_auth_credentials_ca_certificate_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["consumer_id"],
            ["consumers.id"],
            name=op.f("fk_mtls_auth_credentials_consumer_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mtls_auth_credentials")),
        sa.UniqueConstraint("cache_key", name=op.f("uq_mtls_auth_credentials_cache_key")),
    )
    op.create_index(
        op.f("ix_mtls_auth_credentials_ca_certificate_id"),
        "mtls_auth_credentials",
        ["ca_certificate_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_mtls_auth_credentials_consumer_id"),
        "mtls_auth_credentials",
        ["consumer_id"],
        unique=False,
    )
    op.create_table(
        "services",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("retries", sa.BigInteger(), nullable=True),
        sa.Column("protocol", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("port", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("connect_timeout", sa.BigInteger(), nullable=True),
        sa.Column("write_timeout", sa.BigInteger(), nullable=True),
        sa.Column("read_timeout", sa.BigInteger(), nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("client_certificate_id", UUID, nullable=True),
        sa.Column("tls_verify", sa.Boolean(), nullable=True),
        sa.Column("tls_verify_depth", sa.BigInteger(), nullable=True),
        sa.Column("ca_certificates", JSON, nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_certificate_id"],
            ["certificates.id"],
            name=op.f("fk_services_client_certificate_id"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("name", name=op.f("uq_services_name")),
    )
    op.create_index(
        op.f("ix_services_client_certificate_id"),
        "services",
        ["client_certificate_id"],
        unique=False,
    )
    op.create_table(
        "snis",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("certificate_id", UUID, nullable=False),
        sa.Column("tags", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_snis_certificate_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snis")),
        sa.UniqueConstraint("name", name=op.f("uq_snis_name")),
    )
    op.create_index(op.f("ix_snis_certificate_id"), "snis", ["certificate_id"], unique=False)
    op.create_table(
        "upstreams",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("hash_on", sa.Text(), nullable=False),
        sa.Column("hash_fallback", sa.Text(), nullable=False),
        sa.Column("hash_on_header", sa.Text(), nullable=True),
        sa.Column("hash_fallback_header", sa.Text(), nullable=True),
        sa.Column("hash_on_cookie", sa.Text(), nullable=True),
        sa.Column("hash_on_cookie_path", sa.Text(), nullable=False),
        sa.Column("hash_on_query_arg", sa.Text(), nullable=True),
        sa.Column("hash_fallback_query_arg", sa.Text(), nullable=True),
        sa.Column("hash_on_uri_capture", sa.Text(), nullable=True),
        sa.Column("hash_fallback_uri_capture", sa.Text(), nullable=True),
        sa.Column("slots", sa.BigInteger(), nullable=False),
        sa.Column("healthchecks", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("host_header", sa.Text(), nullable=True),
        sa.Column("client_certificate_id", UUID, nullable=True),
        sa.Column("use_srv_name", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_certificate_id"],
            ["certificates.id"],
            name=op.f("fk_upstreams_client_certificate_id"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upstreams")),
        sa.UniqueConstraint("name", name=op.f("uq_upstreams_name")),
    )
    op.create_index(
        op.f("ix_upstreams_client_certificate_id"),
        "upstreams",
        ["client_certificate_id"],
        unique=False,
    )
    op.create_table(
        "routes",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("protocols", JSON, nullable=False),
        sa.Column("methods", JSON, nullable=True),
        sa.Column("hosts", JSON, nullable=True),
        sa.Column("paths", JSON, nullable=True),
        sa.Column("headers", JSON, nullable=True),
        sa.Column("https_redirect_status_code", sa.BigInteger(), nullable=False),
        sa.Column("regex_priority", sa.BigInteger(), nullable=False),
        sa.Column("strip_path", sa.Boolean(), nullable=False),
        sa.Column("path_handling", sa.Text(), nullable=False),
        sa.Column("preserve_host", sa.Boolean(), nullable=False),
        sa.Column("request_buffering", sa.Boolean(), nullable=False),
        sa.Column("response_buffering", sa.Boolean(), nullable=False),
        sa.Column("snis", JSON, nullable=True),
        sa.Column("sources", JSON, nullable=True),
        sa.Column("destinations", JSON, nullable=True),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("service_id", UUID, nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["services.id"], name=op.f("fk_routes_service_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("name", name=op.f("uq_routes_name")),
    )
    op.create_index(op.f("ix_routes_service_id"), "routes", ["service_id"], unique=False)
    op.create_table(
        "targets",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("upstream_id", UUID, nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("weight", sa.BigInteger(), nullable=False),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("cache_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["upstream_id"],
            ["upstreams.id"],
            name=op.f("fk_targets_upstream_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint("cache_key", name=op.f("uq_targets_cache_key")),
    )
    op.create_index(op.f("ix_targets_upstream_id"), "targets", ["upstream_id"], unique=False)
    op.create_table(
        "plugins",
        sa.Column("id", UUID, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("instance_name", sa.Text(), nullable=True),
        sa.Column("route_id", UUID, nullable=True),
        sa.Column("service_id", UUID, nullable=True),
        sa.Column("consumer_id", UUID, nullable=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("protocols", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("tags", JSON, nullable=True),
        sa.Column("cache_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consumer_id"],
            ["consumers.id"],
            name=op.f("fk_plugins_consumer_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_plugins_route_id"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_plugins_service_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugins")),
        sa.UniqueConstraint("cache_key", name=op.f("uq_plugins_cache_key")),
        sa.UniqueConstraint("instance_name", name=op.f("uq_plugins_instance_name")),
    )
    op.create_index(op.f("ix_plugins_consumer_id"), "plugins", ["consumer_id"], unique=False)
    op.create_index(op.f("ix_plugins_route_id"), "plugins", ["route_id"], unique=False)
    op.create_index(op.f("ix_plugins_service_id"), "plugins", ["service_id"], unique=False)
    # the config version every write bumps (and every reloader watches)
    meta = sa.table("ramparts_meta", sa.column("key", sa.Text), sa.column("value", sa.BigInteger))
    op.bulk_insert(meta, [{"key": "config_version", "value": 0}])


def downgrade() -> None:
    op.drop_table("plugins")
    op.drop_table("targets")
    op.drop_table("routes")
    op.drop_table("upstreams")
    op.drop_table("snis")
    op.drop_table("services")
    op.drop_table("mtls_auth_credentials")
    op.drop_table("acls")
    op.drop_table("tags")
    op.drop_table("ramparts_meta")
    op.drop_table("consumers")
    op.drop_table("certificates")
    op.drop_table("ca_certificates")
