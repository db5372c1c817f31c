"""What a node's processes check and open at start; each problem is a ``StartError`` (logged,
exit code 1). The supervisor runs the checks once before it starts any child, so a bad
setting stops ``ramparts start`` instead of a worker that dies over and over."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl

from gateway import keyring, registry
from gateway.db.store import Store
from gateway.declarative import dbless
from gateway.errors import RampartsError
from gateway.reload import Reloader
from gateway.settings.model import Settings
from gateway.snapshot import Holder
from gateway.tls import libssl
from gateway.tls.admin import admin_context
from gateway.tls.client import ClientDefaults, client_defaults
from gateway.tls.contexts import PolicyError, ServerPolicy
from gateway.tls.defaults import default_pairs
from gateway.tls.store import TLSTerminator

log = logging.getLogger("ramparts")


class StartError(Exception):
    """Why the node (or one of its processes) cannot start (logged, exit code 1)."""


def tls_terminator(settings: Settings, holder: Holder) -> TLSTerminator:
    policy = ServerPolicy.from_settings(settings.tls)
    try:
        policy.check()
    except PolicyError as exc:
        raise StartError(str(exc)) from exc
    if libssl.BRIDGE is None:
        _, degraded = policy.without_bridge()
        log.warning("libssl bridge unavailable (%s): cannot honour %s; using OpenSSL's "
                    "defaults for them", libssl.UNAVAILABLE, ", ".join(degraded) or "nothing")
    try:
        return TLSTerminator(policy, default_pairs(settings), lambda: holder.current.certs,
                             cache_size=settings.ssl_context_cache_size,
                             eager=settings.ssl_context_eager)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise StartError(f"cannot load the default certificate: {exc}") from exc


def client_tls_defaults(settings: Settings) -> ClientDefaults:
    tls = settings.client_tls
    if tls is not None and "SSL3.0" in (tls.min_version, tls.max_version):
        raise StartError("client_tls.min_version/max_version: SSL 3.0 is not supported by the "
                         "OpenSSL this process uses")
    try:
        return client_defaults(settings)
    except (OSError, ValueError) as exc:
        raise StartError(f"cannot read the client TLS settings: {exc}") from exc


def admin_tls(settings: Settings) -> ssl.SSLContext | None:
    if not any(x.ssl for x in settings.admin_listeners):
        return None
    try:
        return admin_context(settings)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise StartError(f"cannot set up TLS for the Admin API: {exc}") from exc


def node_keyring(settings: Settings, quiet: bool = False) -> keyring.Keyring | None:
    try:
        ring = keyring.configured(settings.keyring_file)
    except keyring.KeyringError as exc:
        raise StartError(str(exc)) from exc
    if ring is not None and not quiet:
        log.info("keyring: private keys are encrypted at rest under key '%s' (keys: %s)",
                 ring.current_id, ", ".join(ring.ids))
    return ring


def check_session_settings(settings: Settings) -> None:
    """Session settings set away from their defaults that this process cannot honour refuse
    the start (as with the ``tls`` block: explicit settings refuse, defaults degrade, logged).
    """
    bridge = libssl.BRIDGE
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    shared_keys = bridge is not None and bridge.tickets is not None
    needs = {"ssl_session_timeout": bridge is not None,
             "ssl_session_ticket_rotation": shared_keys or not settings.ssl_session_tickets}
    refused = [name for name, possible in needs.items()
               if not possible and getattr(settings, name) != defaults[name]]
    if refused:
        raise StartError(f"cannot honour {', '.join(refused)} without the libssl bridge's "
                         f"session functions ({libssl.UNAVAILABLE or 'no ticket key callback'})")


def preflight(settings: Settings) -> None:
    """Every check a child would make at start, made once by the supervisor."""
    node_keyring(settings)
    if settings.snapshot_cache and keyring.configured(settings.keyring_file) is None:
        raise StartError(f"snapshot_cache: private keys in it must be encrypted: set "
                         f"{keyring.ENV} or keyring_file")
    if any(x.ssl for x in settings.proxy_listeners):
        tls_terminator(settings, Holder())
        check_session_settings(settings)
    client_tls_defaults(settings)
    admin_tls(settings)


async def open_store(settings: Settings, reg: registry.Registry, ring: keyring.Keyring | None,
                     dbless_dir: str | None, admin: bool) -> Store:
    """The database; in DB-less mode the private file the supervisor loaded: the Admin API
    opens it to replace it (``POST /config``), a worker to read it."""
    if not settings.dbless:
        return Store(settings.database, reg, keyring=ring)
    if dbless_dir is None:
        raise StartError("DB-less: no configuration directory from the supervisor")
    if admin:
        return dbless.DblessStore(reg, ring, directory=dbless_dir)
    return Store(dbless.database_url(dbless_dir), reg, keyring=ring)


async def prepare_dbless(settings: Settings, reg: registry.Registry,
                         ring: keyring.Keyring | None) -> dbless.DblessStore:
    try:
        return await dbless.open_store(settings, reg, ring)
    except (RampartsError, OSError) as exc:
        raise StartError(f"cannot load the declarative configuration: {exc}") from exc


async def watch_keyring(store: Store, reloader: Reloader | None, path: str,
                        interval: float = 1.0) -> None:
    """A key added to ``keyring_file`` (before a rotation) is used without a restart."""
    watch = keyring.KeyFileWatch(path)
    while True:
        await asyncio.sleep(interval)
        ring = watch.poll()
        if ring is not None:
            store.keyring = ring
            log.info("keyring_file changed: current key '%s' (keys: %s)", ring.current_id,
                     ", ".join(ring.ids))
            if reloader is not None:
                reloader.refresh()
