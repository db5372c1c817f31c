"""One node: the Admin API, the proxy listeners and the reloader in one event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import socket
import ssl
import uuid
from collections.abc import Callable
from typing import Any

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import keyring, registry, version
from gateway.cluster import Heartbeat, state_of
from gateway.db import audit, migrate
from gateway.db.store import Store
from gateway.declarative import dbless
from gateway.errors import RampartsError
from gateway.plugins import phases
from gateway.plugins.mtls_auth.handshake import ClientCertRequest, Fallback
from gateway.plugins.mtls_auth.snis import SniSet
from gateway.proxy.exchange import Proxy
from gateway.proxy.forwarding import header_policy
from gateway.proxy.listeners import DataPlane, limits_of, open_access_log
from gateway.reload import Reloader
from gateway.server import BindError, Server, bind, make_server, run_servers
from gateway.settings.load import redact_url
from gateway.settings.model import Settings, parse_time
from gateway.snapcache import SnapshotCache, at_start
from gateway.snapshot import Holder, Loaded, Snapshot
from gateway.tasks import spawn
from gateway.tls import libssl, tickets
from gateway.tls.admin import admin_context
from gateway.tls.client import ClientDefaults, client_defaults
from gateway.tls.contexts import PolicyError, ServerPolicy
from gateway.tls.defaults import default_pairs
from gateway.tls.store import TLSTerminator
from gateway.upstream.balancer import Balancers
from gateway.upstream.health import ActiveChecks
from gateway.upstream.pools import Pools

log = logging.getLogger("ramparts")


class StartError(Exception):
    """Why the node cannot start (logged, exit code 1)."""


def settle_heap() -> None:
    """Once the first configuration is live: what exists now (modules, the first snapshot's
    rows) lives as long as the process, so the collector stops scanning it. With 10,000
    certificates and routes a full collection otherwise walks every row and stalls a reload
    (and the handshakes on the loop) for a few hundred milliseconds every few reloads.
    Garbage is collected first, so nothing unreachable is kept."""
    gc.collect()
    gc.freeze()


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


def session_resumption(settings: Settings, terminator: TLSTerminator,
                       mtls_snis: Callable[[], SniSet]) -> None:
    """Kong's ``ssl_session_tickets``/``ssl_session_timeout`` on the listener context (the
    one OpenSSL takes session settings and ticket keys from), and ticket keys derived from
    the node's secret: inherited from the worker supervisor, else made here (never on disk,
    never logged). mtls-auth's SNIs resume nothing: each connection shows its chain."""
    try:
        inherited = tickets.inherited_secret()  # read (and the pipe closed) in every case
    except tickets.TicketSecretError as exc:
        raise StartError(str(exc)) from exc
    ctx = terminator.listener_context()
    refused = _unhonoured_session_settings(settings)
    if refused:
        raise StartError(f"cannot honour {', '.join(refused)} without the libssl bridge's "
                         f"session functions ({libssl.UNAVAILABLE or 'no ticket key callback'})")
    if libssl.BRIDGE is not None:
        timeout = parse_time(settings.ssl_session_timeout) or 86400.0
        libssl.BRIDGE.set_session_timeout(ctx, max(1, int(timeout)))
    if not settings.ssl_session_tickets:
        tickets.disable(ctx)
        return
    if terminator.policy.mtls:
        return  # enable_mtls: no tickets at all (contexts.py)
    keys = tickets.TicketKeys(inherited or tickets.new_secret(),
                              parse_time(settings.ssl_session_ticket_rotation) or 3600)
    terminator.tickets = tickets.install(ctx, keys,
                                         lambda name: mtls_snis().match(name) is not None)


def _unhonoured_session_settings(settings: Settings) -> list[str]:
    """Session settings set away from their defaults that this process cannot honour (as
    with the ``tls`` block: explicit settings refuse to start, defaults degrade, logged)."""
    bridge = libssl.BRIDGE
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    shared_keys = bridge is not None and bridge.tickets is not None
    needs = {"ssl_session_timeout": bridge is not None,
             "ssl_session_ticket_rotation": shared_keys or not settings.ssl_session_tickets}
    return [name for name, possible in needs.items()
            if not possible and getattr(settings, name) != defaults[name]]


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


def admin_servers(store: Store, node: NodeInfo, socks: list[socket.socket]
                  ) -> list[tuple[Server, list[socket.socket]]]:
    """One server per admin listener: whether callers need credentials, and TLS, depend on
    the listener (``socks`` are in ``admin_listeners`` order)."""
    settings = node.settings
    context = admin_tls(settings)
    servers = []
    for listener, sock in zip(settings.admin_listeners, socks, strict=True):
        options: dict[str, Any] = {}
        if listener.ssl and context is not None:
            options["ssl_context_factory"] = lambda *_, ctx=context: ctx
        servers.append((make_server(create_app(store, node, listener), node.stats, **options),
                        [sock]))
    return servers


def _bind_all(listeners: Any) -> list[socket.socket]:
    try:
        return [bind(listener) for listener in listeners]
    except BindError as exc:
        raise StartError(exc.strerror) from exc


def node_keyring(settings: Settings) -> keyring.Keyring | None:
    try:
        ring = keyring.configured(settings.keyring_file)
    except keyring.KeyringError as exc:
        raise StartError(str(exc)) from exc
    if ring is not None:
        log.info("keyring: private keys are encrypted at rest under key '%s' (keys: %s)",
                 ring.current_id, ", ".join(ring.ids))
    return ring


async def watch_keyring(store: Store, reloader: Reloader, path: str,
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
            reloader.refresh()


async def _store(settings: Settings, reg: registry.Registry, ring: keyring.Keyring | None
                 ) -> Store:
    """The database, or in DB-less mode a private one loaded from declarative_config."""
    if not settings.dbless:
        return Store(settings.database, reg, keyring=ring)
    try:
        return await dbless.open_store(settings, reg, ring)
    except (RampartsError, OSError) as exc:
        raise StartError(f"cannot load the declarative configuration: {exc}") from exc


async def run(settings: Settings, reg: registry.Registry) -> int:
    try:
        ring = node_keyring(settings)
    except StartError as exc:
        log.error("%s", exc)
        return 1
    try:
        store = await _store(settings, reg, ring)
    except StartError as exc:
        log.error("%s", exc)
        return 1
    replica = Store(settings.database_ro, reg, keyring=ring) if settings.database_ro else None
    cache = SnapshotCache(settings.snapshot_cache, lambda: store.keyring) \
        if settings.snapshot_cache else None
    if cache is not None and ring is None:
        log.error("snapshot_cache: private keys in it must be encrypted: set %s or "
                  "keyring_file", keyring.ENV)
        return 1
    sockets: list[socket.socket] = []
    try:
        cached: Loaded | None = None
        try:
            before = await migrate.upgrade(store.engine)
            if before.pending:
                log.info("database migrated: %s", ", ".join(before.pending))
        except Exception as exc:
            cached = at_start(cache, exc)
            if cached is None:
                raise StartError(f"cannot prepare the database "
                                 f"{redact_url(settings.database)}: {exc}") from exc
        node = NodeInfo(settings=settings, node_id=str(uuid.uuid4()))
        holder = Holder()
        listeners = settings.proxy_listeners
        tls_listeners = [x for x in listeners if x.ssl]
        terminator = tls_terminator(settings, holder) if tls_listeners else None
        if terminator is not None:
            terminator.on_hello = lambda obj, name: phases.certificate(
                holder.current.plugins, obj, name)
            terminator.on_selected = ClientCertRequest(lambda: holder.current.mtls_snis)
            session_resumption(settings, terminator, lambda: holder.current.mtls_snis)
        pools = Pools()
        balancers = Balancers()
        checks = ActiveChecks(balancers, pools)
        prepare: list[Callable[[Snapshot], object]] = [
            lambda snap: pools.prepare(snap.client_profiles())]
        if terminator is not None:
            fallback = Fallback(terminator.request_client_certs)
            prepare.append(lambda snap: fallback(snap.mtls_snis))
            prepare.append(lambda snap: terminator.prepare(snap.certs))

        def swapped(snap: Snapshot) -> None:
            for name in sorted(set(snap.unrunnable.values())):  # Kong refuses to start
                log.error("%s plugin is in use but not enabled: add it to the 'plugins' "
                          "setting (the routes it covers answer 500)", name)
            pools.retain(snap.client_profiles())
            balancers.update(snap.upstreams.values(), snap.targets_of, snap.health_marks)
            checks.sync(snap)

        heartbeat = Heartbeat(store, lambda: state_of(node.node_id, node.hostname, reloader),
                              settings.cluster_heartbeat)
        reloader = Reloader(store, holder, frequency=settings.db_update_frequency,
                            client=client_tls_defaults(settings), handlers=reg.handlers,
                            prepare=prepare,
                            after_swap=[swapped, heartbeat.poke],
                            listen=settings.db_notifications, cache=cache,
                            replica=replica, replica_wait=settings.database_ro_wait)
        node.reloader = reloader
        await (reloader.apply(cached) if cached is not None else reloader.reload())
        settle_heap()
        node.balancers = balancers
        access_log = open_access_log(settings)
        proxy = Proxy(holder, pools, balancers, health_path=settings.health_path,
                      mtls_required=bool(terminator and terminator.policy.mtls),
                      access_log=access_log,
                      headers=header_policy(settings.headers, settings.headers_upstream))
        plane = DataPlane(proxy, node.stats, limits_of(settings))
        servers: list[tuple[Server, list[socket.socket]]] = []
        admin_socks = _bind_all(settings.admin_listeners)
        plain_socks = _bind_all([x for x in listeners if not x.ssl])
        tls_socks = _bind_all(tls_listeners)
        sockets = admin_socks + plain_socks + tls_socks
        servers.extend(admin_servers(store, node, admin_socks))
        plain = [x for x in listeners if not x.ssl]
        await plane.serve([(s, x.backlog or 2048) for s, x in zip(plain_socks, plain,
                                                                  strict=True)])
        if tls_socks and terminator is not None:
            await plane.serve([(s, x.backlog or 2048) for s, x in zip(tls_socks, tls_listeners,
                                                                      strict=True)],
                              terminator.listener_context())
        log.info("ramparts %s: Admin API on %s; proxy on %s; database %s",
                 version.__version__, ", ".join(map(str, settings.admin_listeners)),
                 ", ".join(map(str, listeners)) or "nothing", redact_url(settings.database))
        spawn(reloader.run(), "reloader")
        heartbeat.start()
        pruner = spawn(audit.prune_forever(store, settings.audit_log_retention),
                       "audit-log-prune")
        if settings.keyring_file:
            spawn(watch_keyring(store, reloader, settings.keyring_file), "keyring-watch")
        try:
            await run_servers(servers, (plane,))
        finally:
            pruner.cancel()
            reloader.stop()
            await heartbeat.stop()
            checks.stop()
            await pools.close()
            if access_log is not None:
                access_log.close()
    except StartError as exc:
        log.error("%s", exc)
        return 1
    finally:
        for sock in sockets:
            sock.close()
        await store.close()
        if replica is not None:
            await replica.close()
    log.info("stopped")
    return 0
