"""What the proxy needs to reach a service, computed once per snapshot (not per request)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from gateway.schema.entities.services import ServiceEntity
from gateway.upstream.pools import PoolKey, TLSProfile

DEFAULT_PORTS = {"http": 80, "https": 443}
TLS_PROTOCOLS = frozenset({"https", "grpcs", "wss"})


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

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def sni_for(host: str) -> str | None:
    name = host.strip("[]")
    if ":" in name or name.replace(".", "").isdigit():
        return None  # IP literals carry no SNI
    return name or None


def target_for(service: ServiceEntity) -> UpstreamTarget:
    scheme = "https" if service.protocol in TLS_PROTOCOLS else "http"
    host = f"[{service.host}]" if ":" in service.host else service.host
    host_header = host if service.port == DEFAULT_PORTS[scheme] else f"{host}:{service.port}"
    timeout = aiohttp.ClientTimeout(total=None,
                                    sock_connect=(service.connect_timeout or 60000) / 1000,
                                    sock_read=(service.read_timeout or 60000) / 1000)
    return UpstreamTarget(
        name=service.name or service.id, scheme=scheme, host=service.host, port=service.port,
        base_path=service.path, host_header=host_header,
        sni=sni_for(service.host) if scheme == "https" else None,
        pool=TLSProfile() if scheme == "https" else None, timeout=timeout,
        attempts=(service.retries or 0) + 1)
