"""TLS session resumption on a worker's listener context: Kong's ``ssl_session_tickets`` and
``ssl_session_timeout``, and ticket keys derived from the node's secret (the supervisor's, so
a ticket one worker issued resumes on every other; ``gateway/tls/tickets.py``)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.plugins.mtls_auth.snis import SniSet
from gateway.settings.model import Settings, parse_time
from gateway.tls import libssl, tickets
from gateway.tls.store import TLSTerminator
from gateway.workers.startup import check_session_settings


def session_resumption(settings: Settings, terminator: TLSTerminator,
                       mtls_snis: Callable[[], SniSet], secret: bytes | None) -> None:
    """On the listener context (the one OpenSSL takes session settings and ticket keys from,
    whatever context the SNI picked). mtls-auth's SNIs resume nothing: each connection shows
    its chain. ``secret``: the node's (never on disk, never logged); None makes one here."""
    ctx = terminator.listener_context()
    check_session_settings(settings)
    if libssl.BRIDGE is not None:
        timeout = parse_time(settings.ssl_session_timeout) or 86400.0
        libssl.BRIDGE.set_session_timeout(ctx, max(1, int(timeout)))
    if not settings.ssl_session_tickets:
        tickets.disable(ctx)
        return
    if terminator.policy.mtls:
        return  # enable_mtls: no tickets at all (contexts.py)
    keys = tickets.TicketKeys(secret or tickets.new_secret(),
                              parse_time(settings.ssl_session_ticket_rotation) or 3600)
    terminator.tickets = tickets.install(ctx, keys,
                                         lambda name: mtls_snis().match(name) is not None)
