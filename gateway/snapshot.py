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

from gateway import gcpause
from gateway.plugins.directory import EMPTY_DIRECTORY, Directory, build_directory
from gateway.plugins.mtls_auth.snis import EMPTY_SNIS, SniSet, build_sni_set
from gateway.plugins.runtime import EMPTY_CHAINS, Chains, Handler, build_chains, row_of
from gateway.reuse import Reuse
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
                   handlers: Mapping[str, type[Handler]] = MappingProxyType({}),
                   reuse: Reuse | None = None) -> Snapshot:
    """Pure: rows -> typed records -> router, certificate index, upstream targets, plugin
    chains. A plugin runs when it has a handler; ``runnable`` names more that count as
    runnable for the fail-closed guard. With the ``reuse`` of the previous build (same
    ``runnable``, ``client`` and ``handlers``), parts whose rows are the same objects as
    then are taken over instead of rebuilt."""
    with gcpause.paused():
        return _build(loaded, runnable, client, handlers, reuse)


def _build(loaded: Loaded, runnable: frozenset[str], client: ClientDefaults | None,
           handlers: Mapping[str, type[Handler]], reuse: Reuse | None) -> Snapshot:
    rows = loaded.rows
    reuse = reuse if reuse is not None else Reuse()
    reuse.begin()
    runnable = runnable | frozenset(handlers)
    get = rows.get
    services: dict[str, ServiceEntity] = {s.id: s for s in reuse.records(
        "services", get("services", ()), lambda r: build(SERVICES.record, dict(r)))}
    upstreams: dict[str, UpstreamEntity] = {u.name: u for u in reuse.records(
        "upstreams", get("upstreams", ()), lambda r: build(UPSTREAMS.record, dict(r)))}
    targets_of: dict[str, list[TargetEntity]] = {}
    for target in reuse.records("targets", get("targets", ()),
                                lambda r: build(TARGETS.record, dict(r))):
        targets_of.setdefault(target.upstream.id, []).append(target)
    routes: list[RouteEntity] = reuse.records("routes", get("routes", ()),
                                              lambda r: build(ROUTES.record, dict(r)))
    certs = {e.id: e for e in reuse.records("certificates", get("certificates", ()),
                                            CertEntry.of_row)}
    inputs = TLSInputs(defaults=client or ClientDefaults(),
                       ca_certificates={r["id"]: r["cert"]
                                        for r in get("ca_certificates", ())},
                       certificates=certs)
    targets, probes = reuse.part(
        "targets", (get("services", ()), get("upstreams", ()), get("certificates", ()),
                    get("ca_certificates", ())), lambda: _targets(services, upstreams, inputs))
    route_rows, plugin_rows = get("routes", ()), get("plugins", ())
    return Snapshot(
        version=loaded.version,
        router=reuse.part("router", (route_rows, get("services", ())),
                          lambda: Router(routes, services)),
        certs=reuse.part("certs", (get("certificates", ()), get("snis", ())),
                         lambda: _cert_index(get("snis", ()), certs)),
        services=MappingProxyType(services), targets=targets,
        unrunnable=reuse.part("unrunnable", (plugin_rows, route_rows), lambda: MappingProxyType(
            unrunnable_plugins(loaded, runnable))),
        upstreams=MappingProxyType(upstreams),
        targets_of=MappingProxyType({k: tuple(sorted(v, key=lambda t: t.id))
                                     for k, v in targets_of.items()}),
        probe_profiles=probes,
        health_marks=MappingProxyType({r["target_id"]: (r["healthy"], r["stamp"])
                                       for r in get("target_health", ())}),
        plugins=reuse.part("plugins", (plugin_rows, route_rows), lambda: build_chains(
            (row_of(r) for r in plugin_rows),
            {r.id: r.service.id if r.service else None for r in routes}, handlers)),
        directory=reuse.part("directory", tuple(get(n, ()) for n in DIRECTORY_TABLES),
                             lambda: build_directory(rows)),
        mtls_snis=reuse.part("mtls_snis", (plugin_rows, route_rows, get("ca_certificates", ())),
                             lambda: build_sni_set(plugin_rows if "mtls-auth" in handlers
                                                   else (), route_rows,
                                                   inputs.ca_certificates)))


# the tables build_directory reads (consumers, their credentials and groups, CAs, CRLs)
DIRECTORY_TABLES = ("consumers", "mtls_auth_credentials", "acls", "ca_certificates", "ca_crls")


def _cert_index(snis: Sequence[Row], certs: Mapping[str, CertEntry]) -> CertIndex:
    return CertIndex.build((r["name"], certs[r["certificate"]["id"]]) for r in snis
                           if r["certificate"]["id"] in certs)


def _targets(services: Mapping[str, ServiceEntity], upstreams: Mapping[str, UpstreamEntity],
             inputs: TLSInputs) -> tuple[Mapping[str, UpstreamTarget],
                                         Mapping[str, ClientProfile]]:
    targets = {sid: target_for(service, upstreams, inputs)
               for sid, service in services.items()}
    probes = {u.id: probe_profile(u, targets, inputs) for u in upstreams.values()
              if u.healthchecks.active.type == "https"}
    return MappingProxyType(targets), MappingProxyType(probes)


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
