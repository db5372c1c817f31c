"""The Admin API process: Starlette on uvicorn, on the admin sockets the supervisor bound.

It never runs the proxy: nothing it does (a large body, a slow query, a long validation) can
delay proxied traffic. What ``GET /status`` reports about the proxy (connection counters, the
applied configuration version) it reads from the workers' status board; upstream health it
asks the workers for (``gateway/workers/control.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry, version
from gateway.db import audit
from gateway.db.store import Store
from gateway.server import Lifecycle, Server, make_server, watch_parent
from gateway.settings.listen import Listener
from gateway.settings.load import redact_url
from gateway.settings.model import Settings
from gateway.tasks import spawn
from gateway.workers.board import READY, ROLE_ADMIN, ROLE_WORKER, Board
from gateway.workers.handoff import ChildContext
from gateway.workers.publish import Publisher
from gateway.workers.startup import StartError, admin_tls, node_keyring, open_store, watch_keyring

log = logging.getLogger("ramparts")


def admin_servers(store: Store, node: NodeInfo,
                  sockets: tuple[tuple[socket.socket, Listener], ...]
                  ) -> list[tuple[Server, list[socket.socket]]]:
    """One server per admin listener: whether callers need credentials, and TLS, depend on
    the listener."""
    context = admin_tls(node.settings)
    servers = []
    for sock, listener in sockets:
        options: dict[str, Any] = {}
        if listener.ssl and context is not None:
            options["ssl_context_factory"] = lambda *_, ctx=context: ctx
        servers.append((make_server(create_app(store, node, listener), node.stats, **options),
                        [sock]))
    return servers


async def workers_serving(board: Board, count: int, patience: float = 300.0) -> None:
    """Wait (at the node's first start) until ``count`` workers serve; the supervisor stops
    the node if one cannot start."""
    deadline = asyncio.get_running_loop().time() + patience
    while asyncio.get_running_loop().time() < deadline:
        entries = board.entries().values()
        if sum(1 for e in entries if e.role == ROLE_WORKER and e.state == READY) >= count:
            return
        await asyncio.sleep(0.05)


async def run_admin(settings: Settings, reg: registry.Registry, ctx: ChildContext) -> int:
    try:
        ring = node_keyring(settings, quiet=True)
        store = await open_store(settings, reg, ring, ctx.dbless_dir, admin=True)
    except StartError as exc:
        log.error("%s", exc)
        return 1
    board = Board(ctx.board_fd)
    node = NodeInfo(settings=settings, node_id=ctx.node_id, board=board, run_dir=ctx.run_dir)

    def wake_workers() -> None:  # a committed write: SQLite has no NOTIFY to wake them
        spawn(node.wake_workers(), "wake-workers")

    store.on_commit.append(wake_workers)
    publisher = Publisher(board, ctx.entry, ROLE_ADMIN, node.stats)
    try:
        lifecycle = Lifecycle(admin_servers(store, node, ctx.sockets), (),
                              settings.drain_seconds)
        publisher.start()
        await workers_serving(board, ctx.slot)
        pruner = spawn(audit.prune_forever(store, settings.audit_log_retention),
                       "audit-log-prune")
        spawn(watch_parent(lifecycle), "parent-watch")
        if settings.keyring_file:
            spawn(watch_keyring(store, None, settings.keyring_file), "keyring-watch")
        log.info("ramparts %s: Admin API on %s; database %s", version.__version__,
                 ", ".join(str(x) for _, x in ctx.sockets) or "nothing",
                 redact_url(settings.database))
        publisher.set_state(READY)  # uvicorn starts serving at once on the bound sockets
        await lifecycle.run()
        pruner.cancel()
    except StartError as exc:
        log.error("%s", exc)
        return 1
    finally:
        publisher.stop()
        for sock, _ in ctx.sockets:
            sock.close()
        await store.close()
    return 0
