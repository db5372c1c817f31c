"""Which TLS handshakes get a CertificateRequest: Kong's mtls-auth SNI set (kong.md §6.2).

Built with the snapshot from every enabled mtls-auth plugin: a global plugin, or a route
without ``snis``, puts ``*`` in the set (every handshake, no SNI and unknown SNIs included);
a route plugin puts that route's ``snis``; a service plugin the ``snis`` of each of its
routes. Each key carries the CA certificates to name in the request (``send_ca_dn``),
merged across the plugins sharing the key. Pure data, read once per handshake.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

STAR = "*"
NAME = "mtls-auth"
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True, slots=True)
class SniSet:
    """SNI key (``a.b``, ``*.b``, ``a.*`` or ``*``) -> DER CA certificates to name."""

    keys: Mapping[str, tuple[bytes, ...]]
    # every CA of every enabled mtls-auth plugin (PEM): the trust store of the fallback that
    # asks for certificates without the libssl bridge
    ca_pems: tuple[str, ...] = ()

    def match(self, server_name: str | None) -> tuple[bytes, ...] | None:
        """Kong's order: exact, postfix wildcard (ends-with, any depth), prefix wildcard,
        then ``*``. None: no client certificate is requested on this handshake."""
        keys = self.keys
        if not keys:
            return None
        if server_name:
            name = server_name.lower().rstrip(".")
            found = keys.get(name)
            if found is not None:
                return found
            for key, cas in keys.items():
                if key.startswith("*.") and name.endswith(key[1:]):
                    return cas
            for key, cas in keys.items():
                if key.endswith(".*") and name.startswith(key[:-1]):
                    return cas
        return keys.get(STAR)


EMPTY_SNIS = SniSet(MappingProxyType({}))


def _der(pem: str) -> bytes:
    match = _PEM.search(pem)
    return base64.b64decode("".join(match.group(1).split())) if match else b""


def build_sni_set(plugins: Iterable[Mapping[str, Any]], routes: Iterable[Mapping[str, Any]],
                  ca_certificates: Mapping[str, str]) -> SniSet:
    """``plugins``/``routes``: rows as loaded; ``ca_certificates``: id -> PEM."""
    routes = list(routes)
    keys: dict[str, list[bytes]] = {}
    pems: dict[str, str] = {}
    for plugin in plugins:
        if plugin["name"] != NAME or not plugin["enabled"]:
            continue
        config = plugin.get("config") or {}
        pems.update((i, ca_certificates[i]) for i in config.get("ca_certificates") or ()
                    if i in ca_certificates)
        cas = [_der(ca_certificates[i]) for i in config.get("ca_certificates") or ()
               if i in ca_certificates] if config.get("send_ca_dn") else []
        for key in _keys_of(plugin, routes):
            merged = keys.setdefault(key.lower(), [])
            merged.extend(der for der in cas if der and der not in merged)
    return SniSet(MappingProxyType({k: tuple(v) for k, v in keys.items()}),
                  tuple(pems[i] for i in sorted(pems)))


def _keys_of(plugin: Mapping[str, Any], routes: list[Mapping[str, Any]]) -> list[str]:
    if plugin.get("route"):
        scoped = [r for r in routes if r["id"] == plugin["route"]["id"]]
    elif plugin.get("service"):
        sid = plugin["service"]["id"]
        scoped = [r for r in routes if r.get("service") and r["service"]["id"] == sid]
    else:
        return [STAR]
    out: list[str] = []
    for route in scoped:
        out.extend(route.get("snis") or [STAR])
    return out
