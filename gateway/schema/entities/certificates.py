"""``certificates``, ``snis`` and ``ca_certificates`` (Kong 3.x fields and messages)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from gateway.schema.checks import Custom, Issues, MutuallyRequired
from gateway.schema.compile import Ref
from gateway.schema.entities.common import CreatedAt, Id, UpdatedAt
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Foreign, Secret, Transient, Unique
from gateway.schema.typedefs import Certificate, Key, Tags, WildcardHost
from gateway.tls import pem
from gateway.tls.contexts import ca_error, pair_error

SecretKey = Annotated[Key, Secret()]


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    cert: Certificate
    key: SecretKey
    cert_alt: Certificate | None = None
    key_alt: SecretKey | None = None
    tags: Tags = None
    # Kong's shorthand: names materialised as `snis` rows in the same transaction
    snis: Annotated[tuple[WildcardHost, ...] | None, Transient()] = None


def _leaf(text: str) -> Any:
    return pem.load_certificates(text)[0]


def _pair_matches(cert_field: str, key_field: str, message: str) -> Custom:
    def check(values: Mapping[str, Any]) -> Issues:
        cert, key = values.get(cert_field), values.get(key_field)
        if not isinstance(cert, str) or not isinstance(key, str):
            return []
        if not pem.key_matches(_leaf(cert), pem.load_private_key(key)):
            return [(None, message)]
        # what the snapshot will load must load: a pair OpenSSL refuses would fail the build
        err = pair_error(cert, key)
        if err is not None:
            return [(cert_field, f"invalid certificate: OpenSSL cannot use it: {err}")]
        return []

    return Custom((cert_field, key_field), check)


def _different_types(values: Mapping[str, Any]) -> Issues:
    cert, alt = values.get("cert"), values.get("cert_alt")
    if not isinstance(cert, str) or not isinstance(alt, str):
        return []
    if pem.key_type(_leaf(cert).public_key()) == pem.key_type(_leaf(alt).public_key()):
        return [(None, "certificate and alternative certificate need to have different type "
                       "(e.g. RSA and ECDSA), the provided certificates were both of the same "
                       "type")]
    return []


CERTIFICATES = EntitySchema.define(
    CertificateEntity, "certificates",
    checks=(
        MutuallyRequired(("cert_alt", "key_alt")),
        _pair_matches("cert", "key", "certificate does not match key"),
        _pair_matches("cert_alt", "key_alt", "alternative certificate does not match key"),
        Custom(("cert", "cert_alt"), _different_types),
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SniEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    name: Annotated[WildcardHost, Unique()]
    certificate: Annotated[Ref, Foreign("certificates", on_delete="cascade")]
    tags: Tags = None


SNIS = EntitySchema.define(SniEntity, "snis", endpoint_key="name",
                           hidden_parent_endpoints=("certificate",))


@dataclass(frozen=True, slots=True, kw_only=True)
class CACertificateEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    cert: Certificate
    cert_digest: Annotated[str | None, Unique()] = None
    tags: Tags = None


def _ca_checks(values: Mapping[str, Any]) -> Issues:
    text = values.get("cert")
    if not isinstance(text, str):
        return []
    if pem.count_certificates(text) > 1:
        return [(None, "please submit only one certificate at a time")]
    # services trust it through OpenSSL: what OpenSSL cannot load would fail the build
    err = ca_error(text)
    if err is not None:
        return [("cert", f"invalid certificate: OpenSSL cannot use it: {err}")]
    cert = _leaf(text)
    if pem.is_expired(cert):
        return [(None, 'certificate expired, "Not After" time is in the past')]
    if not pem.is_ca(cert):
        return [(None, 'certificate does not appear to be a CA because it is missing the "CA"'
                       ' basic constraint')]
    return []


CA_CERTIFICATES = EntitySchema.define(
    CACertificateEntity, "ca_certificates", checks=(Custom(("cert",), _ca_checks),))
