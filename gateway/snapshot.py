"""The immutable configuration the proxy serves from, and the holder it is swapped into.

A snapshot is built off the event loop from one consistent read of the database and swapped
in with one assignment; every handshake and request reads ``holder.current`` once and uses
that object to the end, so a reload never changes a request halfway through.

A build must not fail on anything the Admin API stored: one failing row would keep every
later write from going live. So everything the build (and its prepare hooks) compiles is
compiled the same way when it is written:

| compiled at build                         | checked at write time by                     |
|-------------------------------------------|----------------------------------------------|
| path regexes, header ``~*`` regexes (RE2) | ``router_path``, ``route_header_value``      |
| route hosts ``host:port``                 | ``route_host`` (decimal ports only)          |
| certificate pairs (SNI and client certs)  | ``pair_error``: loaded into an SSL context   |
| CA certificates (service trust)           | ``ca_error``: loaded as ``cadata``           |
| client TLS defaults (settings)            | ``client_defaults`` builds one at start      |
| plugin configs (nothing is built yet)     | whatever a handler precomputes, its schema's |
|                                           | checks must compute too                      |

What still fails (a row from an older release, written behind the API) keeps the last good
snapshot serving; ``/status`` and the error log say which version fails and why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.plugins.directory import EMPTY_DIRECTORY, Directory, build_directory
from gateway.plugins.mtls_auth.snis import EMPTY_SNIS, SniSet, build_sni_set
from gateway.plugins.runtime import EMPTY_CHAINS, Chains, Handler, build_chains, row_of
from gateway.router.router import Router
from gateway.schema.build import build
from gateway.schema.entities.routes import ROUTES, RouteEntity
from gateway.schema.entities.services import SERVICES, ServiceEntity
from gateway.schema.entities.upstreams import (
    TARGETS,
    UPSTREAMS,
    TargetEntity,
    UpstreamEntity,
)
from gateway.tls.client import ClientDefaults, ClientProfile
from gateway.tls.store import EMPTY_INDEX, CertEntry, CertIndex
from gateway.upstream.target import TLSInputs, UpstreamTarget, profile_for, target_for

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
    targets: Mapping[str, UpstreamTarget] = field(default_factory=dict)
    # route id (or "*" for every route) -> an enabled plugin this node cannot run yet
    unrunnable: Mapping[str, str] = field(default_factory=dict)
    upstreams: Mapping[str, UpstreamEntity] = field(default_factory=dict)  # by name
    targets_of: Mapping[str, tuple[TargetEntity, ...]] = field(default_factory=dict)
    probe_profiles: Mapping[str, ClientProfile] = field(default_factory=dict)  # upstream id
    health_marks: Mapping[str, tuple[bool, int]] = field(default_factory=dict)  # target id
    plugins: Chains = EMPTY_CHAINS  # which plugin instances run, per route
    directory: Directory = EMPTY_DIRECTORY  # consumers, credentials, CAs (kong.db)
    mtls_snis: SniSet = EMPTY_SNIS  # handshakes that get a CertificateRequest (mtls-auth)

    def client_profiles(self) -> set[ClientProfile]:
        pools = {t.pool for t in self.targets.values() if t.pool is not None}
        return pools | set(self.probe_profiles.values())

    @property
    def empty(self) -> bool:
        return self.version < 0


EMPTY = Snapshot(version=-1, router=Router([], {}), certs=EMPTY_INDEX)


class Holder:
    """The one mutable cell: ``current`` is replaced, never modified."""

    __slots__ = ("current",)

    def __init__(self, snapshot: Snapshot = EMPTY) -> None:
        self.current = snapshot


def unrunnable_plugins(loaded: Loaded, runnable: frozenset[str]) -> dict[str, str]:
    """Fail closed: a route covered by an enabled plugin this node has no handler for must
    not be proxied as if the plugin were absent (an mtls-auth route would become open)."""
    rows = loaded.rows
    out: dict[str, str] = {}
    for plugin in rows.get("plugins", ()):
        name = plugin["name"]
        if not plugin["enabled"] or name in runnable:
            continue
        if plugin["route"]:
            out[plugin["route"]["id"]] = name
        elif plugin["service"]:
            sid = plugin["service"]["id"]
            for route in rows.get("routes", ()):
                if route["service"] and route["service"]["id"] == sid:
                    out[route["id"]] = name
        else:  # global, or consumer-scoped (any request may belong to that consumer)
            out["*"] = name
    return out


def build_snapshot(loaded: Loaded, runnable: frozenset[str] = frozenset(),
                   client: ClientDefaults | None = None,
                   handlers: Mapping[str, type[Handler]] = MappingProxyType({})) -> Snapshot:
    """Pure: rows -> typed records -> router, certificate index, upstream targets, plugin
    chains. A plugin runs when it has a handler; ``runnable`` names more that count as
    runnable for the fail-closed guard."""
    rows = loaded.rows
    runnable = runnable | frozenset(handlers)
    services: dict[str, ServiceEntity] = {
        r["id"]: build(SERVICES.record, dict(r)) for r in rows.get("services", ())}
    upstreams: dict[str, UpstreamEntity] = {
        r["name"]: build(UPSTREAMS.record, dict(r)) for r in rows.get("upstreams", ())}
    targets_of: dict[str, list[TargetEntity]] = {}
    for r in rows.get("targets", ()):
        target: TargetEntity = build(TARGETS.record, dict(r))
        targets_of.setdefault(target.upstream.id, []).append(target)
    routes: list[RouteEntity] = [build(ROUTES.record, dict(r)) for r in rows.get("routes", ())]
    certs = {r["id"]: CertEntry(id=r["id"], cert=r["cert"], key=r["key"],
                                cert_alt=r.get("cert_alt"), key_alt=r.get("key_alt"))
             for r in rows.get("certificates", ())}
    snis = [(r["name"], certs[r["certificate"]["id"]]) for r in rows.get("snis", ())
            if r["certificate"]["id"] in certs]
    inputs = TLSInputs(defaults=client or ClientDefaults(),
                       ca_certificates={r["id"]: r["cert"]
                                        for r in rows.get("ca_certificates", ())},
                       certificates=certs)
    targets = {sid: target_for(service, upstreams, inputs)
               for sid, service in services.items()}
    probes = {u.id: probe_profile(u, targets, inputs) for u in upstreams.values()
              if u.healthchecks.active.type == "https"}
    return Snapshot(version=loaded.version, router=Router(routes, services),
                    certs=CertIndex.build(snis), services=MappingProxyType(services),
                    targets=MappingProxyType(targets),
                    unrunnable=MappingProxyType(unrunnable_plugins(loaded, runnable)),
                    upstreams=MappingProxyType(upstreams),
                    targets_of=MappingProxyType({k: tuple(sorted(v, key=lambda t: t.id))
                                                 for k, v in targets_of.items()}),
                    probe_profiles=MappingProxyType(probes),
                    health_marks=MappingProxyType({r["target_id"]: (r["healthy"], r["stamp"])
                                                   for r in rows.get("target_health", ())}),
                    plugins=build_chains(
                        (row_of(r) for r in rows.get("plugins", ())),
                        {r.id: r.service.id if r.service else None for r in routes}, handlers),
                    directory=build_directory(rows),
                    mtls_snis=build_sni_set(rows.get("plugins", ()) if "mtls-auth" in handlers
                                            else (), rows.get("routes", ()),
                                            inputs.ca_certificates))


def probe_profile(upstream: UpstreamEntity, targets: Mapping[str, UpstreamTarget],
                  inputs: TLSInputs) -> ClientProfile:
    """HTTPS probes use the traffic's TLS profile: that of the first (by id) HTTPS service
    balanced over this upstream, else the defaults with the upstream's client certificate;
    ``https_verify_certificate: false`` turns verification off for probes only."""
    profile: ClientProfile | None = None
    for sid in sorted(targets):
        target = targets[sid]
        if target.upstream is not None and target.upstream.id == upstream.id and target.pool:
            profile = target.pool
            break
    if profile is None:
        stand_in = build(SERVICES.record, {"id": upstream.id, "created_at": 0,
                                           "updated_at": 0, "host": upstream.name,
                                           "protocol": "https", "port": 443})
        profile = profile_for(stand_in, upstream, inputs)
    if not upstream.healthchecks.active.https_verify_certificate:
        profile = dataclasses.replace(profile, verify=False)
    return profile
