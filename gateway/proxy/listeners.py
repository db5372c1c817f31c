"""The proxy listeners: our ``Downstream`` protocol served on sockets we bound ourselves,
TLS through the loop's SSL transport with the terminator's listener context."""

from __future__ import annotations

import asyncio
import socket
import ssl

from gateway.proxy.connection import Downstream, Handler, Limits
from gateway.stats import ServerStats


class DataPlane:
    """Every proxy listener of the process, and the connections they accepted."""

    def __init__(self, handler: Handler, stats: ServerStats, limits: Limits | None = None
                 ) -> None:
        self.handler = handler
        self.stats = stats
        self.limits = limits or Limits()
        self.connections: set[Downstream] = set()
        self._servers: list[asyncio.Server] = []

    def _protocol(self) -> Downstream:
        return Downstream(self.handler, self.stats, self.limits, self.connections)

    async def serve(self, sockets: list[tuple[socket.socket, int]],
                    context: ssl.SSLContext | None = None) -> None:
        """``sockets``: bound and listening, each with its listener's backlog (the loop
        calls ``listen`` again with it)."""
        loop = asyncio.get_running_loop()
        for sock, backlog in sockets:
            server = await loop.create_server(self._protocol, sock=sock, ssl=context,
                                              backlog=backlog)
            self._servers.append(server)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, close idle connections, give requests in flight ``grace``
        seconds to finish, then cut what is left."""
        for server in self._servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            for conn in list(self.connections):
                if conn.idle:
                    conn.close()
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        self._servers.clear()
