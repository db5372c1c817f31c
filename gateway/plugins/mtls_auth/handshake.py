"""mtls-auth in the TLS handshake: ask for a client certificate where some enabled mtls-auth
plugin can apply (the snapshot's SNI set), optionally and accepting any certificate, so the
plugin can answer 401 over HTTP instead of the handshake failing (design.md §3).

Sync: runs inside the SNI callback, after the certificate is chosen; memory lookups only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.plugins.mtls_auth.snis import SniSet
from gateway.tls import libssl

log = logging.getLogger("ramparts.plugins.mtls-auth")


class ClientCertRequest:
    """The ``on_selected`` hook of the TLS terminator."""

    def __init__(self, current: Callable[[], SniSet]) -> None:
        self.current = current

    def __call__(self, obj: Any, server_name: str | None) -> None:
        cas = self.current().match(server_name)
        if cas is None:
            return
        bridge = libssl.BRIDGE
        if bridge is None:
            return  # without the bridge, Fallback asks on every handshake instead
        bridge.request_optional_client_cert(obj, cas)


class Fallback:
    """Without the bridge (a prepare hook, off the loop): every handshake of the listener
    asks for an optional certificate once any mtls-auth plugin is enabled, trusting the union
    of their CAs; OpenSSL then refuses other certificates in the handshake itself, with no
    HTTP answer. Said once in the log."""

    def __init__(self, apply: Callable[[str | None], None]) -> None:
        self.apply = apply
        self._warned = False

    def __call__(self, snis: SniSet) -> None:
        if libssl.BRIDGE is not None:
            return
        cas = "".join(snis.ca_pems) if snis.keys else None
        if cas and not self._warned:
            self._warned = True
            log.warning("mtls-auth without the libssl bridge (%s): every TLS handshake asks "
                        "for a client certificate, and one from a CA no mtls-auth plugin "
                        "trusts fails the handshake instead of getting a 401",
                        libssl.UNAVAILABLE)
        self.apply(cas or None)
