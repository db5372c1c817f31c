"""The declarative configurations (`kong.yml`, written as JSON) of bench/extra.py's nodes.

Pure: each returns the document `ramparts config db_import` loads, so a test can validate
the exact configurations the benchmark measures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Doc = dict[str, Any]


def _service(origin: int, routes: list[Doc], **extra: Any) -> Doc:
    return {"name": "origin", "url": f"http://127.0.0.1:{origin}", "routes": routes, **extra}


def base_config(origin: int) -> Doc:
    """One service, one route `/`: the reference every variant is compared with."""
    return {"_format_version": "3.0",
            "services": [_service(origin, [{"name": "all", "paths": ["/"]}])]}


def mtls_config(origin: int, ca_pem: str, ca_id: str, subject: str) -> Doc:
    """Seed 003's flow: a CA certificate, mtls-auth on the route trusting it, a consumer
    identified by its credential's `subject_name` (the client certificate's CN)."""
    plugin = {"name": "mtls-auth", "config": {"ca_certificates": [ca_id]}}
    return {"_format_version": "3.0",
            "ca_certificates": [{"id": ca_id, "cert": ca_pem}],
            "services": [_service(origin, [{"name": "secure", "paths": ["/"],
                                            "plugins": [plugin]}])],
            "consumers": [{"username": subject,
                           "mtls_auth_credentials": [{"subject_name": subject}]}]}


def routes_config(origin: int, indexes: Iterable[int]) -> Doc:
    """Prefix routes `/rNNNN` (Kong's default `strip_path`), all to the origin."""
    routes = [{"name": f"r{i:04d}", "paths": [f"/r{i:04d}"]} for i in indexes]
    return {"_format_version": "3.0", "services": [_service(origin, routes)]}


def noop_config(origin: int, names: Sequence[str]) -> tuple[Doc, str]:
    """Three no-op plugins for the route `/`, and how they are placed (for the report).

    Three different no-op plugins all go on the route. With one plugin name only, its three
    instances go on the route, the service and globally: Kong's lookup then runs the most
    specific one (one instance per plugin name), after looking up all three levels."""
    if len(names) >= 3:
        doc = base_config(origin)
        doc["services"][0]["routes"][0]["plugins"] = [{"name": n} for n in names[:3]]
        return doc, "`" + "`, `".join(names[:3]) + "` on the route"
    name = names[0]
    route = {"name": "all", "paths": ["/"], "plugins": [{"name": name}]}
    doc = {"_format_version": "3.0", "plugins": [{"name": name}],
           "services": [_service(origin, [route], plugins=[{"name": name}])]}
    return doc, (f"`{name}` on the route, on its service and globally (Kong's lookup runs one "
                 "instance per plugin name: the route's)")


def client_cert_config(origin_tls: int, ca_pem: str, ca_id: str, cert_pem: str, key_pem: str,
                       cert_id: str) -> Doc:
    """The harness's scenario d: an HTTPS origin, verified against the bench's CA, that
    requires a client certificate (the service's `client_certificate`)."""
    service = {"name": "origin-tls", "url": f"https://localhost:{origin_tls}",
               "tls_verify": True, "ca_certificates": [ca_id], "client_certificate": cert_id,
               "routes": [{"name": "all", "paths": ["/"]}]}
    return {"_format_version": "3.0", "services": [service],
            "ca_certificates": [{"id": ca_id, "cert": ca_pem}],
            "certificates": [{"id": cert_id, "cert": cert_pem, "key": key_pem}]}
