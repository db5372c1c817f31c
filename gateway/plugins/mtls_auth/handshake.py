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
        self._warned = False

    def __call__(self, obj: Any, server_name: str | None) -> None:
        cas = self.current().match(server_name)
        if cas is None:
            return
        bridge = libssl.BRIDGE
        if bridge is None:
            if not self._warned:  # once per process: every handshake would say the same
                self._warned = True
                log.warning("mtls-auth: the libssl bridge is unavailable (%s); client "
                            "certificates cannot be requested, so mtls-auth routes answer "
                            "401 'No required TLS certificate was sent'", libssl.UNAVAILABLE)
            return
        bridge.request_optional_client_cert(obj, cas)
