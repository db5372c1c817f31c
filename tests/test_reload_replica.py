"""A read replica that hangs (accepts connections, never answers) delays a load by at most
``replica_wait``: the primary is read instead."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from gateway import registry
from gateway.db.store import Store
from gateway.reload import Reloader
from gateway.snapshot import Holder
from tests.conftest import wipe


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port whose kernel completes TCP handshakes that nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


async def test_a_hanging_replica_falls_back_to_the_primary_in_bounded_time(
        store: Store, hanging_port: int) -> None:
    await wipe(store)
    replica = Store(f"postgresql://postgres@127.0.0.1:{hanging_port}/none", registry.build())
    reloader = Reloader(store, Holder(), replica=replica, replica_wait=0.3)
    try:
        async with store.write():
            pass
        started = time.monotonic()
        assert await reloader.reload()
        # the driver's own connect timeout is 5 s: only the bounded wait ends it sooner
        assert time.monotonic() - started < 3.5
        assert reloader.holder.current.version == await store.config_version()
    finally:
        store.on_commit.remove(reloader._wake.set)
        await replica.close()
