"""The immutable configuration the proxy serves from, and the holder it is swapped into.

A snapshot is built off the event loop from one consistent read of the database and swapped
in with one assignment; every handshake and request reads ``holder.current`` once and uses
that object to the end, so a reload never changes a request halfway through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.router.router import Router
from gateway.schema.build import build
from gateway.schema.entities.routes import ROUTES, RouteEntity
from gateway.schema.entities.services import SERVICES, ServiceEntity
from gateway.tls.store import EMPTY_INDEX, CertEntry, CertIndex

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Loaded:
    """Rows of every entity, read in one transaction, with the version they carry."""

    version: int
    rows: Mapping[str, Sequence[Row]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    router: Router
    certs: CertIndex
    services: Mapping[str, ServiceEntity] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.version < 0


EMPTY = Snapshot(version=-1, router=Router([], {}), certs=EMPTY_INDEX)


class Holder:
    """The one mutable cell: ``current`` is replaced, never modified."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot = EMPTY) -> None:
        self.current = snapshot


def build_snapshot(loaded: Loaded) -> Snapshot:
    """Pure: rows -> typed records -> router and certificate index."""
    rows = loaded.rows
    services: dict[str, ServiceEntity] = {
        r["id"]: build(SERVICES.record, dict(r)) for r in rows.get("services", ())}
    routes: list[RouteEntity] = [build(ROUTES.record, dict(r)) for r in rows.get("routes", ())]
    certs = {r["id"]: CertEntry(id=r["id"], cert=r["cert"], key=r["key"],
                                cert_alt=r.get("cert_alt"), key_alt=r.get("key_alt"))
             for r in rows.get("certificates", ())}
    snis = [(r["name"], certs[r["certificate"]["id"]]) for r in rows.get("snis", ())
            if r["certificate"]["id"] in certs]
    return Snapshot(version=loaded.version, router=Router(routes, services),
                    certs=CertIndex.build(snis), services=MappingProxyType(services))
