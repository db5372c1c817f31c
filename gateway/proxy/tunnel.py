"""After an upstream's ``101 Switching Protocols``: both directions spliced byte for byte
until either side closes (WebSocket). Each side's back-pressure pauses the other's reading."""

from __future__ import annotations

import asyncio
from typing import Protocol


class End(Protocol):
    """One side of the tunnel (the client's connection or the upstream's)."""

    transport: asyncio.Transport | None
    tunnel: Tunnel | None

    def close(self) -> None: ...


class Tunnel:
    __slots__ = ("client", "closed", "origin")

    def __init__(self, client: End, origin: End) -> None:
        self.client = client
        self.origin = origin
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(self, from_client: bytes, from_origin: bytes) -> None:
        """Splice until one side closes; the bytes each side sent right behind its
        upgrade head go first."""
        self.client.tunnel = self
        self.origin.tunnel = self
        if from_origin:
            self.to_client(from_origin)
        if from_client:
            self.to_origin(from_client)
        await self.closed

    def to_client(self, data: bytes) -> None:
        self._write(self.client, data)

    def to_origin(self, data: bytes) -> None:
        self._write(self.origin, data)

    def _write(self, end: End, data: bytes) -> None:
        if end.transport is not None and not end.transport.is_closing():
            end.transport.write(data)

    def pause(self, writer: End) -> None:
        """``writer``'s send buffer is full: stop reading the other side."""
        other = self.origin if writer is self.client else self.client
        if other.transport is not None and not other.transport.is_closing():
            other.transport.pause_reading()

    def resume(self, writer: End) -> None:
        other = self.origin if writer is self.client else self.client
        if other.transport is not None and not other.transport.is_closing():
            other.transport.resume_reading()

    def lost(self, end: End) -> None:
        """One side closed: the other is closed once what it was sent is flushed."""
        other = self.origin if end is self.client else self.client
        other.close()
        if not self.closed.done():
            self.closed.set_result(None)
