"""The data plane in process, for tests: our listener and proxy over a snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.proxy.exchange import Proxy
from gateway.proxy.listeners import DataPlane
from gateway.server import bind
from gateway.settings.listen import Listener
from gateway.snapshot import Holder, Snapshot
from gateway.stats import ServerStats
from gateway.upstream.pools import Pools
from tests.e2e.proc import free_port


@asynccontextmanager
async def proxy_on(snapshot: Snapshot) -> AsyncIterator[int]:
    """A plain-HTTP proxy listener serving ``snapshot``; yields its port."""
    pools = Pools()
    port = free_port()
    sock = bind(Listener(host="127.0.0.1", port=port))
    plane = DataPlane(Proxy(Holder(snapshot), pools), ServerStats())
    await plane.serve([(sock, 16)])
    try:
        yield port
    finally:
        await plane.stop(grace=1)
        sock.close()
        await pools.close()
