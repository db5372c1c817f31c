"""The Admin API's server context, for ``admin_listen`` entries with the ``ssl`` flag.

Kong's names: ``admin_ssl_cert``/``admin_ssl_cert_key`` (else the generated ``localhost``
default pair, as for the proxy) and ours, ``admin_ssl_client_ca``: when set, every client is
asked for a certificate, verified against those CAs alone (never the system pool). A client
without one is still served, so tokens keep working over TLS. With the libssl bridge a bad
certificate completes the handshake and the Admin API answers 401 saying why; without it,
OpenSSL ends the handshake.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

from gateway.settings.model import Settings, read_pem
from gateway.tls import libssl
from gateway.tls.contexts import ServerPolicy, server_context
from gateway.tls.defaults import Pair, generated_pairs


def admin_pairs(settings: Settings) -> list[Pair]:
    if settings.admin_ssl_cert:
        return [(read_pem(c), read_pem(k))
                for c, k in zip(settings.admin_ssl_cert, settings.admin_ssl_cert_key,
                                strict=True)]
    return generated_pairs(Path(settings.prefix) / "ssl")


def admin_context(settings: Settings) -> ssl.SSLContext:
    """Versions, suites and groups follow the ``tls`` block, as on the proxy listeners."""
    policy = dataclasses.replace(ServerPolicy.from_settings(settings.tls), client_ca=None,
                                 system_ca=False)
    ctx = server_context(policy, admin_pairs(settings))
    client_ca = "".join(read_pem(path) for path in settings.admin_ssl_client_ca)
    if client_ca:
        ctx.load_verify_locations(cadata=client_ca)
        # no session resumption: each connection presents (and has verified) its chain
        ctx.num_tickets = 0
        ctx.options |= ssl.OP_NO_TICKET
        bridge = libssl.BRIDGE
        if bridge is not None:
            bridge.request_client_cert(ctx)
        else:
            ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
