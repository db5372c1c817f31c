"""The proxy listeners: our ``Downstream`` protocol served on sockets we bound ourselves,
TLS through our own layer (``gateway.proxy.tls``) with the terminator's listener context."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from gateway.proxy.access_log import AccessLog
from gateway.proxy.connection import Downstream, Handler, Limits, _too_many
from gateway.proxy.tls import TLSListener
from gateway.settings.model import (
    Settings,
    parse_buffers,
    parse_size,
    parse_time,
    worker_connections,
)
from gateway.stats import ServerStats

log = logging.getLogger("ramparts.proxy")


def limits_of(settings: Settings) -> Limits:
    """The listeners' limits from nginx's directives (validated at load)."""
    number, size = parse_buffers(settings.nginx_http_large_client_header_buffers) or (4, 8192)
    return Limits(
        client_header_timeout=parse_time(settings.nginx_http_client_header_timeout) or 60.0,
        client_body_timeout=parse_time(settings.nginx_http_client_body_timeout) or 60.0,
        keepalive_timeout=parse_time(settings.nginx_http_keepalive_timeout) or 60.0,
        large_client_header_buffers=size, client_header_buffer_total=number * size,
        client_max_body_size=parse_size(settings.nginx_http_client_max_body_size) or 0,
        send_timeout=parse_time(settings.nginx_http_send_timeout) or 60.0,
        lingering_close=settings.nginx_http_lingering_close,
        lingering_time=parse_time(settings.nginx_http_lingering_time) or 0.0,
        lingering_timeout=parse_time(settings.nginx_http_lingering_timeout) or 0.0,
        worker_connections=worker_connections(settings.nginx_events_worker_connections)
        or 16384)


def open_access_log(settings: Settings, worker: int | None = None) -> AccessLog | None:
    """``proxy_access_log``: a path relative to ``prefix`` (Kong's ``logs/access.log``),
    ``/dev/stdout``, or ``off``. The node's workers append to the same file (one ``write``
    per burst of whole lines, in append mode); ``worker`` (a pid) goes in JSON lines."""
    target = settings.proxy_access_log.strip()
    if target.lower() == "off" or not target:
        return None
    path = Path(settings.prefix) / target
    path.parent.mkdir(parents=True, exist_ok=True)
    # a buffer larger than any burst: each flush is one append-mode write(), so lines of
    # the node's workers never interleave mid-line
    stream = open(path, "a", encoding="utf-8", errors="replace",  # noqa: SIM115 - AccessLog owns it
                  buffering=1 << 20)
    return AccessLog(stream, settings.proxy_access_log_format, worker)


class DataPlane:
    """Every proxy listener of the process, and the connections they accepted."""

    def __init__(self, handler: Handler, stats: ServerStats, limits: Limits | None = None
                 ) -> None:
        self.handler = handler
        self.stats = stats
        self.limits = limits or Limits()
        self.connections: set[Downstream] = set()
        self._servers: list[asyncio.Server] = []
        self._tls: list[TLSListener] = []
        self._deadline = float("inf")

    def _protocol(self) -> Downstream:
        return Downstream(self.handler, self.stats, self.limits, self.connections)

    async def serve(self, sockets: list[tuple[socket.socket, int]],
                    context: ssl.SSLContext | None = None) -> None:
        """``sockets``: bound and listening, each with its listener's backlog (the loop
        calls ``listen`` again with it)."""
        loop = asyncio.get_running_loop()
        factory: Callable[[], asyncio.Protocol] = self._protocol
        if context is not None:
            # a silent or trickling TLS client is closed as a silent HTTP one is
            listener = TLSListener(context, self._protocol, self.connections,
                                   self.limits.worker_connections,
                                   self.limits.client_header_timeout, self.stats, _too_many)
            self._tls.append(listener)
            factory = listener.connection
        for sock, backlog in sockets:
            server = await loop.create_server(factory, sock=sock, backlog=backlog)
            self._servers.append(server)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, close idle connections, give requests in flight ``grace``
        seconds to finish, then cut what is left (a server-sent-events stream or a tunnel
        never finishes by itself). ``cut`` ends the wait at once."""
        for server in self._servers:
            server.close()
        loop = asyncio.get_running_loop()
        self._deadline = min(self._deadline, loop.time() + grace)
        while self.connections and loop.time() < self._deadline:
            for conn in list(self.connections):
                if conn.idle:
                    conn.close()
                else:  # answered with "Connection: close", then closed (nginx's way)
                    conn.keep_alive(False)
            await asyncio.sleep(0.05)
        if self.connections:
            log.info("drain deadline: cutting %d connection(s) still open",
                     len(self.connections))
        for conn in list(self.connections):
            conn.abort()
        for listener in self._tls:
            listener.abort_handshakes()
        self._servers.clear()

    def cut(self) -> None:
        """Stop now: the running ``stop`` cuts every connection at its next look."""
        self._deadline = 0.0
