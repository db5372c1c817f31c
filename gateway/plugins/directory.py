"""What plugins look up at request time (Kong's ``kong.db`` through its cache): consumers,
their credentials and the CA certificates, indexed once when the snapshot is built."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.plugins.mtls_auth.crl import Crl
from gateway.plugins.mtls_auth.crl import parse as parse_crl
from gateway.plugins.pdk import Consumer

Row = Mapping[str, Any]
log = logging.getLogger("ramparts.plugins")


def _frozen() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Directory:
    consumers: Mapping[str, Consumer] = field(default_factory=_frozen)        # by id
    by_username: Mapping[str, Consumer] = field(default_factory=_frozen)
    by_custom_id: Mapping[str, Consumer] = field(default_factory=_frozen)
    # (subject_name, ca_certificate id or None) -> consumer id
    mtls_credentials: Mapping[tuple[str, str | None], str] = field(default_factory=_frozen)
    acls: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen)     # consumer id
    ca_certificates: Mapping[str, str] = field(default_factory=_frozen)      # id -> PEM
    crls: Mapping[str, Crl] = field(default_factory=_frozen)                 # CA id -> CRL

    def consumer(self, id_or_username: str) -> Consumer | None:
        """Kong's ``anonymous``/``default_consumer`` lookup: by id, then by username."""
        return self.consumers.get(id_or_username.lower()) or self.by_username.get(
            id_or_username)


EMPTY_DIRECTORY = Directory()


def subject_key(subject_name: str) -> str:
    """Seed 003 writes ``subject_name=CN=api-client`` for the certificate whose CN is
    ``api-client``: a leading ``CN=`` (and nothing else DN-like after it) names the CN."""
    if subject_name[:3].upper() == "CN=" and "," not in subject_name:
        return subject_name[3:]
    return subject_name


def build_directory(rows: Mapping[str, Sequence[Row]]) -> Directory:
    consumers = {r["id"]: Consumer(id=r["id"], username=r.get("username"),
                                   custom_id=r.get("custom_id"))
                 for r in rows.get("consumers", ())}
    creds = {(subject_key(r["subject_name"]),
              r["ca_certificate"]["id"] if r.get("ca_certificate") else None):
             r["consumer"]["id"]
             for r in rows.get("mtls_auth_credentials", ()) if r.get("consumer")}
    acls: dict[str, list[str]] = {}
    for r in sorted(rows.get("acls", ()), key=lambda r: (r.get("created_at") or 0, r["id"])):
        acls.setdefault(r["consumer"]["id"], []).append(r["group"])
    return Directory(
        consumers=MappingProxyType(consumers),
        by_username=MappingProxyType({c.username: c for c in consumers.values() if c.username}),
        by_custom_id=MappingProxyType({c.custom_id: c for c in consumers.values()
                                       if c.custom_id}),
        mtls_credentials=MappingProxyType(creds),
        acls=MappingProxyType({k: tuple(v) for k, v in acls.items()}),
        ca_certificates=MappingProxyType({r["id"]: r["cert"]
                                          for r in rows.get("ca_certificates", ())}),
        crls=MappingProxyType(_crls(rows.get("ca_crls", ()))))


def _crls(rows: Sequence[Row]) -> dict[str, Crl]:
    out = {}
    for row in rows:
        try:  # checked on upload; a row that no longer parses is left out, loudly
            out[row["ca_certificate"]["id"]] = parse_crl(row["crl"])
        except ValueError as exc:
            log.error("CRL %s of CA certificate %s cannot be read: %s", row["id"],
                      row["ca_certificate"]["id"], exc)
    return out
