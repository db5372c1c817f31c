"""What the proxy needs to reach a service, computed once per snapshot (not per request)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from gateway.schema.entities.services import ServiceEntity
from gateway.schema.entities.upstreams import UpstreamEntity
from gateway.text import is_digits
from gateway.tls.client import ClientDefaults, ClientProfile
from gateway.tls.store import CertEntry
from gateway.upstream.balancer import Peer
from gateway.upstream.pools import PoolKey

if TYPE_CHECKING:
    from gateway.upstream.origins import OriginKey

log = logging.getLogger("ramparts.upstream")

DEFAULT_PORTS = {"http": 80, "https": 443}
TLS_PROTOCOLS = frozenset({"https", "grpcs", "wss"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one attempt goes: the service's host, or the target the balancer picked."""

    host: str  # as written in a URL (IPv6 bracketed)
    port: int
    host_header: str
    sni: str | None
    origin: str


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    name: str
    scheme: str
    host: str
    port: int
    base_path: str | None
    host_header: str  # Kong: the service host, with the port unless it is the default
    sni: str | None   # the host header's name; none for IP literals
    pool: PoolKey
    timeout: aiohttp.ClientTimeout
    attempts: int
    upstream: UpstreamEntity | None = None  # the service's host names this upstream entity
    write_timeout: float = 60.0  # seconds one chunk of the request body may take to write
    # where requests go when no balancer picks a target (built once, with the snapshot)
    direct: Endpoint | None = field(default=None, compare=False)
    # and the key of its connection pool: one object, so the pool lookup neither builds nor
    # compares a key per request
    direct_key: OriginKey | None = field(default=None, compare=False)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{url_host(self.host)}:{self.port}"


def url_host(host: str) -> str:
    """The host as it is written in a URL: IPv6 literals bracketed."""
    return f"[{host}]" if ":" in host else host


def sni_for(host: str) -> str | None:
    name = host.strip("[]")
    if ":" in name or is_digits(name.replace(".", "")):
        return None  # IP literals carry no SNI
    return name or None


def host_header(host: str, port: int, scheme: str) -> str:
    shown = url_host(host)
    return shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"


@dataclass(frozen=True, slots=True)
class TLSInputs:
    """Everything a profile may draw on, from one snapshot's rows and the settings."""

    defaults: ClientDefaults
    ca_certificates: Mapping[str, str]  # id -> PEM
    certificates: Mapping[str, CertEntry]


def profile_for(service: ServiceEntity, upstream: UpstreamEntity | None,
                inputs: TLSInputs) -> ClientProfile:
    """Kong's precedence, with KrakenD's secure default: verification on unless the service
    says ``tls_verify: false`` (or ``client_tls.allow_insecure_connections``); the service's
    ``ca_certificates`` replace the default trust; the client certificate is the service's,
    else the upstream entity's, else the global default."""
    d = inputs.defaults
    verify = service.tls_verify if service.tls_verify is not None else d.verify
    ca_pem, system_ca = d.ca_pem, d.system_ca
    if service.ca_certificates:
        missing = [i for i in service.ca_certificates if i not in inputs.ca_certificates]
        if missing:
            log.error("service %s: ca_certificates %s do not exist; those CAs are not trusted",
                      service.name or service.id, ", ".join(missing))
        ca_pem = "".join(inputs.ca_certificates[i] for i in service.ca_certificates
                         if i in inputs.ca_certificates)
        system_ca = False
    cert, key = d.cert, d.key
    ref = service.client_certificate or (upstream.client_certificate if upstream else None)
    if ref is not None:
        entry = inputs.certificates.get(ref.id)
        if entry is not None:
            cert, key = entry.cert, entry.key
    return ClientProfile(verify=verify, depth=service.tls_verify_depth, ca_pem=ca_pem,
                         system_ca=system_ca, cert=cert, key=key, min_version=d.min_version,
                         max_version=d.max_version, tls13_suites=d.tls13_suites,
                         tls12_ciphers=d.tls12_ciphers, groups=d.groups)


def endpoint(target: UpstreamTarget, peer: Peer | None) -> Endpoint:
    if peer is None:
        if target.direct is not None:
            return target.direct
        return Endpoint(url_host(target.host), target.port, target.host_header, target.sni,
                        target.origin)
    header = host_header(peer.host, peer.port, target.scheme)
    if target.upstream is not None and target.upstream.host_header:
        header = target.upstream.host_header
    name = header[:header.rindex(":")] if header.count(":") == 1 else header
    shown = url_host(peer.host)
    return Endpoint(shown, peer.port, header,
                    sni_for(name) if target.scheme == "https" else None,
                    f"{target.scheme}://{shown}:{peer.port}")


def target_for(service: ServiceEntity, upstreams: Mapping[str, UpstreamEntity],
               inputs: TLSInputs) -> UpstreamTarget:
    scheme = "https" if service.protocol in TLS_PROTOCOLS else "http"
    upstream = upstreams.get(service.host)
    header = host_header(service.host, service.port, scheme)
    if upstream is not None and upstream.host_header:
        header = upstream.host_header
    timeout = aiohttp.ClientTimeout(total=None,
                                    sock_connect=(service.connect_timeout or 60000) / 1000,
                                    sock_read=(service.read_timeout or 60000) / 1000)
    profile = profile_for(service, upstream, inputs) if scheme == "https" else None
    target = UpstreamTarget(
        name=service.name or service.id, scheme=scheme, host=service.host, port=service.port,
        base_path=service.path, host_header=header,
        sni=sni_for(header.rsplit(":", 1)[0] if header.count(":") == 1 else header)
        if scheme == "https" else None,
        pool=profile, timeout=timeout, attempts=(service.retries or 0) + 1, upstream=upstream,
        write_timeout=(service.write_timeout or 60000) / 1000)
    from gateway.upstream.origins import OriginKey  # here: origins imports upstream code
    direct = endpoint(target, None)
    return dataclasses.replace(target, direct=direct, direct_key=OriginKey(
        target.pool, direct.host, direct.port, direct.sni))
