"""Run the node's servers in our own event loop, on sockets we bind ourselves: the Admin API
(Starlette) on uvicorn, the proxy on our own data plane (``gateway.proxy.listeners``).

Binding ourselves gives Kong's listener flags (``reuseport``, ``backlog=``, IPv6) and lets the
supervisor bind once and hand the sockets to its children. Signals are ours too: uvicorn's
default re-raises SIGTERM after shutdown, which would turn a clean stop into exit code -15.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.proxy.listeners import DataPlane
from gateway.settings.listen import Listener
from gateway.stats import ServerStats
from gateway.tasks import spawn
from gateway.tls.info import tls_info

log = logging.getLogger("ramparts")


class BindError(OSError):
    pass


def bind(listener: Listener, reuseport: bool = False) -> socket.socket:
    """A listening socket for ``listener``; ``reuseport`` sets SO_REUSEPORT whatever the
    listener's flags (the supervisor binds one socket per worker slot on each proxy port)."""
    host = listener.bind_host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if listener.reuseport or reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and listener.ipv6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(listener.ipv6only))
        sock.bind((host, listener.port))
        sock.listen(listener.backlog or 2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on {listener.host}:{listener.port}: "
                                   f"{exc.strerror}") from exc
    return sock


class CountingConfig(uvicorn.Config):
    """A uvicorn config that carries the process's counters to the protocol objects."""

    stats: ServerStats


class CountingHttpToolsProtocol(HttpToolsProtocol):
    """Counts connections for ``GET /status``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        stats: ServerStats = self.config.stats  # type: ignore[attr-defined]
        stats.connections_accepted += 1
        stats.connections_active += 1
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        stats: ServerStats = self.config.stats  # type: ignore[attr-defined]
        stats.connections_active -= 1
        stats.connections_handled += 1
        super().connection_lost(exc)


class _WithTLS:
    """Wraps the app for one TLS connection: every request scope gets the TLS extension."""

    __slots__ = ("app", "info")

    def __init__(self, app: Any, info: dict[str, Any]) -> None:
        self.app = app
        self.info = info

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})["tls"] = self.info
        await self.app(scope, receive, send)


class TLSScopeProtocol(CountingHttpToolsProtocol):
    """Counts connections and fills ``scope["extensions"]["tls"]`` (the Admin API's TLS
    listeners read the client certificate from it)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        obj = transport.get_extra_info("ssl_object")
        if obj is not None:
            self.app = _WithTLS(self.app, tls_info(obj))


class Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by ``Lifecycle``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(app: Any, stats: ServerStats, **options: Any) -> Server:
    protocol: type[CountingHttpToolsProtocol] = (
        TLSScopeProtocol if "ssl_context_factory" in options else CountingHttpToolsProtocol)
    config = CountingConfig(app, http=protocol, loop="none", lifespan="off",
                            log_config=None, access_log=False, server_header=False,
                            proxy_headers=False, **options)
    config.stats = stats
    return Server(config)


class Lifecycle:
    """Serve until told to stop, then drain. SIGTERM or SIGINT (or the supervisor going
    away) drains: listeners close, requests in flight get ``drain`` seconds, then whatever
    is left (long-lived streams, tunnels) is cut. A second SIGTERM/SIGINT, or SIGQUIT, cuts
    everything at once. SIGUSR1 is the supervisor's "drain": it never cuts, so a child that
    a terminal's Ctrl-C or a process-group SIGTERM already reached (children share the
    supervisor's process group, as nginx's workers do) is not cut by the supervisor passing
    the same stop on. The data planes are already serving when ``run`` is called."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1)

    def __init__(self, servers: list[tuple[Server, list[socket.socket]]],
                 planes: tuple[DataPlane, ...] = (), drain: float = 30.0) -> None:
        self.servers = servers
        self.planes = planes
        self.drain = drain
        self.draining = asyncio.Event()
        self.on_drain: list[Callable[[], object]] = []
        for server, _ in servers:
            server.config.timeout_graceful_shutdown = max(1, round(drain))

    def stop(self, at_once: bool = False) -> None:
        if at_once or self.draining.is_set():
            log.info("stopping now")
            for server, _ in self.servers:
                server.should_exit = server.force_exit = True
            for plane in self.planes:
                plane.cut()
        else:
            log.info("draining: requests in flight get %g s", self.drain)
            for hook in self.on_drain:
                hook()
            for server, _ in self.servers:
                server.should_exit = True
        self.draining.set()

    def _signal(self, sig: signal.Signals) -> None:
        if sig == signal.SIGUSR1 and self.draining.is_set():
            return  # the supervisor's drain, already under way
        self.stop(at_once=sig == signal.SIGQUIT)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self._signal, sig)
        try:
            serving = [spawn(server.serve(sockets=socks), "admin-server")
                       for server, socks in self.servers]
            await self.draining.wait()
            await asyncio.gather(*serving, *(plane.stop(self.drain) for plane in self.planes))
        finally:
            for sig in self.SIGNALS:
                loop.remove_signal_handler(sig)


async def watch_parent(lifecycle: Lifecycle, interval: float = 1.0) -> None:
    """A child whose supervisor died (SIGKILL leaves no chance to tell it) drains and exits
    instead of serving on unsupervised."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(interval)
    log.warning("the supervisor (pid %d) is gone: draining", parent)
    lifecycle.stop()
