"""A proxy worker process: the data plane on the sockets the supervisor handed over, with its
own reloader, heartbeat row, pools, balancers and active health checks. Nothing else runs on
its loop (the Admin API has a process of its own)."""

from __future__ import annotations

import gc
import logging
import os
import socket
from collections.abc import Callable

from gateway import registry
from gateway.cluster import Heartbeat, state_of
from gateway.db.store import Store
from gateway.errors import DatabaseUnavailable
from gateway.plugins import phases
from gateway.plugins.mtls_auth.handshake import ClientCertRequest, Fallback
from gateway.proxy.exchange import Proxy
from gateway.proxy.forwarding import header_policy
from gateway.proxy.listeners import DataPlane, limits_of, open_access_log
from gateway.reload import Reloader
from gateway.server import Lifecycle, watch_parent
from gateway.settings.listen import Listener
from gateway.settings.model import Settings, parse_size
from gateway.snapcache import SnapshotCache, at_start
from gateway.snapshot import Holder, Snapshot
from gateway.stats import ServerStats
from gateway.tasks import spawn
from gateway.tls.store import TLSTerminator
from gateway.upstream.balancer import Balancers
from gateway.upstream.health import ActiveChecks
from gateway.upstream.origin import HEAD_MAX
from gateway.upstream.pools import Pools
from gateway.workers import control
from gateway.workers.board import DRAINING, READY, ROLE_WORKER, Board
from gateway.workers.handoff import ChildContext, control_path
from gateway.workers.publish import Publisher
from gateway.workers.resumption import session_resumption
from gateway.workers.startup import (
    StartError,
    client_tls_defaults,
    node_keyring,
    open_store,
    tls_terminator,
    watch_keyring,
)

log = logging.getLogger("ramparts")


def _terminator(settings: Settings, holder: Holder, tls: bool,
                prepare: list[Callable[[Snapshot], object]], secret: bytes | None
                ) -> TLSTerminator | None:
    if not tls:
        return None
    terminator = tls_terminator(settings, holder)
    terminator.on_hello = lambda obj, name: phases.certificate(holder.current.plugins, obj,
                                                               name)
    terminator.on_selected = ClientCertRequest(lambda: holder.current.mtls_snis)
    session_resumption(settings, terminator, lambda: holder.current.mtls_snis, secret)
    fallback = Fallback(terminator.request_client_certs)
    prepare.append(lambda snap: fallback(snap.mtls_snis))
    prepare.append(lambda snap: terminator.prepare(snap.certs))
    return terminator


def settle_heap() -> None:
    """Once the first configuration is live: what exists now (modules, the first snapshot's
    rows) lives as long as the process, so the collector stops scanning it. With 10,000
    certificates and routes a full collection otherwise walks every row and stalls a reload
    (and the handshakes on the loop) for a few hundred milliseconds every few reloads.
    Garbage is collected first, so nothing unreachable is kept."""
    gc.collect()
    gc.freeze()


async def _first_load(reloader: Reloader, cache: SnapshotCache | None) -> None:
    """The configuration to start with; the last-good snapshot cache when the database is
    unreachable (the supervisor already migrated it)."""
    try:
        await reloader.reload()
    except Exception as exc:
        # the store reports an outage as DatabaseUnavailable: judge the failure under it
        cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and exc.__cause__ \
            else exc
        cached = at_start(cache, cause)
        if cached is None:
            raise StartError(f"cannot read the configuration: {exc}") from exc
        await reloader.apply(cached)


async def serve(plane: DataPlane, sockets: tuple[tuple[socket.socket, Listener], ...],
                terminator: TLSTerminator | None) -> None:
    plain = [(s, x.backlog or 2048) for s, x in sockets if not x.ssl]
    await plane.serve(plain)
    tls = [(s, x.backlog or 2048) for s, x in sockets if x.ssl]
    if tls and terminator is not None:
        await plane.serve(tls, terminator.listener_context())


async def run_worker(settings: Settings, reg: registry.Registry, ctx: ChildContext) -> int:
    board = Board(ctx.board_fd)
    try:
        ring = node_keyring(settings, quiet=True)
        store = await open_store(settings, reg, ring, ctx.dbless_dir, admin=False)
    except StartError as exc:
        log.error("%s", exc)
        return 1
    replica = Store(settings.database_ro, reg, keyring=ring) if settings.database_ro else None
    cache = SnapshotCache(settings.snapshot_cache, lambda: store.keyring) \
        if settings.snapshot_cache else None
    try:
        await _serve_until_stopped(settings, reg, ctx, board, store, replica, cache)
    except StartError as exc:
        log.error("%s", exc)
        return 1
    finally:
        for sock, _ in ctx.sockets:
            sock.close()  # this process's copy: the supervisor's keeps the port open
        await store.close()
        if replica is not None:
            await replica.close()
    log.info("worker stopped")
    return 0


async def _serve_until_stopped(settings: Settings, reg: registry.Registry, ctx: ChildContext,
                               board: Board, store: Store, replica: Store | None,
                               cache: SnapshotCache | None) -> None:
    holder, stats = Holder(), ServerStats()
    pools = Pools(head_max=parse_size(settings.nginx_proxy_proxy_buffer_size) or HEAD_MAX)
    balancers = Balancers()
    checks = ActiveChecks(balancers, pools)
    prepare: list[Callable[[Snapshot], object]] = [
        lambda snap: pools.prepare(snap.client_profiles())]
    terminator = _terminator(settings, holder, any(x.ssl for _, x in ctx.sockets), prepare,
                             ctx.ticket_secret)

    def swapped(snap: Snapshot) -> None:
        for name in sorted(set(snap.unrunnable.values())):  # Kong refuses to start
            log.error("%s plugin is in use but not enabled: add it to the 'plugins' "
                      "setting (the routes it covers answer 500)", name)
        pools.retain(snap.client_profiles())
        balancers.update(snap.upstreams.values(), snap.targets_of, snap.health_marks)
        checks.sync(snap)

    heartbeat = Heartbeat(store, lambda: state_of(ctx.heartbeat_id, socket.gethostname(),
                                                  reloader), settings.cluster_heartbeat)
    # one worker writes the last-good cache (the others would write the same bytes)
    reloader = Reloader(store, holder, frequency=settings.db_update_frequency,
                        client=client_tls_defaults(settings), handlers=reg.handlers,
                        prepare=prepare,
                        after_swap=[swapped, heartbeat.poke],
                        listen=settings.db_notifications,
                        cache=cache if ctx.slot == 0 else None,
                        replica=replica, replica_wait=settings.database_ro_wait)
    publisher = Publisher(board, ctx.entry, ROLE_WORKER, stats, reloader)
    reloader.after_swap += (publisher.publish,)
    publisher.start()
    await _first_load(reloader, cache)
    settle_heap()
    access_log = open_access_log(settings, os.getpid())
    proxy = Proxy(holder, pools, balancers, health_path=settings.health_path,
                  mtls_required=bool(terminator and terminator.policy.mtls),
                  access_log=access_log,
                  headers=header_policy(settings.headers, settings.headers_upstream))
    plane = DataPlane(proxy, stats, limits_of(settings))
    await serve(plane, ctx.sockets, terminator)
    lifecycle = Lifecycle([], (plane,), settings.drain_seconds)
    lifecycle.on_drain.append(lambda: publisher.set_state(DRAINING))
    queries = await control.serve(control_path(ctx.run_dir, ctx.entry), balancers,
                                  reloader.wake)
    spawn(reloader.run(), "reloader")
    heartbeat.start()
    spawn(watch_parent(lifecycle), "parent-watch")
    if settings.keyring_file:
        spawn(watch_keyring(store, reloader, settings.keyring_file), "keyring-watch")
    publisher.set_state(READY)
    log.info("worker %d serving %s (configuration version %d)", ctx.slot,
             ", ".join(str(x) for _, x in ctx.sockets) or "nothing",
             holder.current.version)
    try:
        await lifecycle.run()
    finally:
        queries.close()
        publisher.stop()
        reloader.stop()
        await heartbeat.stop()
        checks.stop()
        await pools.close()
        if access_log is not None:
            access_log.close()
