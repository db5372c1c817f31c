"""The data plane in process, for tests: our listener and proxy over a snapshot."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

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


@contextmanager
def uncollected(*kinds: type) -> Iterator[list[str]]:
    """The names of the objects of ``kinds`` that what runs inside leaves for the cyclic
    collector (reference cycles): filled in at the end. The collector is off meanwhile, and
    what its final collection finds unreachable is kept to be read (``DEBUG_SAVEALL``)."""
    left: list[str] = []
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield left
        gc.collect()
        left.extend(type(o).__name__ for o in gc.garbage if isinstance(o, kinds))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
