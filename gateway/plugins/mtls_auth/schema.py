"""``mtls-auth``: Kong Enterprise's client-certificate authentication (config and credential).

Field names, defaults and messages follow Kong's schema so existing scripts and ``kong.yml``
files validate the same way.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated

from gateway import version
from gateway.plugins.base import PluginSpec
from gateway.schema.checks import MutuallyRequired
from gateway.schema.compile import Ref
from gateway.schema.entities.common import CreatedAt, Id
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Between, Check, Foreign, LenMax, LenMin, OneOf, Unique
from gateway.schema.typedefs import MAX_CRL, Tags, UuidStr, host

Port = Annotated[int | None, Between(0, 65535)]


def pin(value: str) -> str | None:
    """curl's ``--pinnedpubkey`` form: ``sha256//`` and the base64 SHA-256 of the SPKI."""
    if not value.startswith("sha256//"):
        return "expected 'sha256//' followed by the base64 SHA-256 of a public key"
    try:
        raw = base64.b64decode(value[8:], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    return None if len(raw) == 32 else "expected a base64 SHA-256 hash (32 bytes) after 'sha256//'"


Host = Annotated[str | None, Check(host)]


@dataclass(frozen=True, slots=True, kw_only=True)
class MtlsAuthConfig:
    __checks__ = (MutuallyRequired(("http_proxy_host", "http_proxy_port")),
                  MutuallyRequired(("https_proxy_host", "https_proxy_port")))

    anonymous: str | None = None
    consumer_by: tuple[Annotated[str, OneOf("username", "custom_id")], ...] | None = (
        "username", "custom_id")
    ca_certificates: tuple[UuidStr, ...]
    cache_ttl: float = 60
    skip_consumer_lookup: bool = False
    allow_partial_chain: bool = False
    authenticated_group_by: Annotated[str | None, OneOf("CN", "DN")] = "CN"
    revocation_check_mode: Annotated[str | None, OneOf("SKIP", "IGNORE_CA_ERROR", "STRICT")] = \
        "IGNORE_CA_ERROR"
    http_timeout: float | None = 30000
    cert_cache_ttl: float | None = 60000
    send_ca_dn: bool | None = False
    default_consumer: str | None = None
    http_proxy_host: Host = None
    http_proxy_port: Port = None
    https_proxy_host: Host = None
    https_proxy_port: Port = None
    ssl_verify: bool | None = True
    san_dirname_matcher: tuple[str, ...] | None = ()
    # beyond Kong (seed 003): only these client public keys, and client-certificate
    # details for the upstream
    pinned_certificates: tuple[Annotated[str, Check(pin)], ...] | None = ()
    forward_client_cert: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MtlsAuthCredential:
    id: Id
    created_at: CreatedAt
    consumer: Annotated[Ref | None, Foreign("consumers", on_delete="cascade")] = None
    subject_name: Annotated[str, LenMin(1)]
    ca_certificate: Annotated[Ref | None, Foreign("ca_certificates", on_delete="cascade")] = None
    tags: Tags = None


CREDENTIALS = EntitySchema.define(
    MtlsAuthCredential, "mtls_auth_credentials",
    cache_key=("subject_name", "ca_certificate"), plugin="mtls-auth")

@dataclass(frozen=True, slots=True, kw_only=True)
class CaCrl:
    """A CRL uploaded for a CA certificate (``POST /ca_certificates/{id}/crl``, seed 003):
    one per CA, replaced by the next upload, deleted with its CA. Checked against its CA by
    the endpoint (gateway.plugins.mtls_auth.crl)."""

    id: Id
    created_at: CreatedAt
    ca_certificate: Annotated[Ref, Foreign("ca_certificates", on_delete="cascade"), Unique()]
    crl: Annotated[str, LenMin(1), LenMax(MAX_CRL)]


CA_CRLS = EntitySchema.define(CaCrl, "ca_crls", plugin="mtls-auth", generate_admin_api=False)

PLUGIN = PluginSpec.define(
    "mtls-auth", MtlsAuthConfig, version=version.__version__, priority=1600,
    no_consumer=True, entities=(CREDENTIALS, CA_CRLS))
