"""/status is a liveness probe: it answers at once, from the node's own state, even while the
database hangs, and says the database is unreachable when the probe does not answer in time."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from admin.app import create_app
from admin.meta import NodeInfo
from gateway import registry
from gateway.db.engine import database_name
from gateway.db.probe import DatabaseProbe, Reachability
from gateway.db.store import Store
from gateway.settings.load import load

ANSWER_WITHIN = 1.0  # seconds: generous for a loaded machine; the probe itself waits 50 ms


@contextlib.asynccontextmanager
async def admin_on(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store, NodeInfo(settings=load(env={}), node_id=str(uuid.uuid4())))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        yield client


async def timed_status(client: httpx.AsyncClient) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    r = await client.get("/status")
    took = time.monotonic() - started
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body, took


async def until_reachable(client: httpx.AsyncClient, wanted: bool, within: float
                          ) -> list[float]:
    """Polls /status until ``reachable`` is ``wanted``; returns every answer's time."""
    deadline = time.monotonic() + within
    times: list[float] = []
    while time.monotonic() < deadline:
        body, took = await timed_status(client)
        times.append(took)
        if body["database"]["reachable"] is wanted:
            return times
        await asyncio.sleep(0.05)
    raise AssertionError(f"/status did not report reachable={wanted} within {within} s")


@contextlib.asynccontextmanager
async def locked_pg(store: Store) -> AsyncIterator[None]:
    """Another session holds ACCESS EXCLUSIVE on the table the probe reads."""
    conn = await asyncpg.connect(store.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE ramparts_meta IN ACCESS EXCLUSIVE MODE")
        yield
        await tx.rollback()
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def locked_sqlite(store: Store) -> AsyncIterator[None]:
    """Another connection holds SQLite's exclusive lock (no WAL shared memory for readers),
    taken once the store's pooled connections are closed; the next one waits on it."""
    path = database_name(store.url)
    assert path is not None
    await store.engine.dispose()
    conn = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("UPDATE ramparts_meta SET value = value WHERE key = 'config_version'")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def test_status_answers_at_once_while_the_database_hangs(store: Store) -> None:
    async with admin_on(store) as client:
        body, _ = await timed_status(client)
        assert body["database"] == {"reachable": True}
        lock = locked_pg(store) if store.dialect == "postgresql" else locked_sqlite(store)
        async with lock:
            times = await until_reachable(client, False, within=5)
            assert max(times) < ANSWER_WITHIN, times
            body, took = await timed_status(client)
            assert body["database"] == {"reachable": False} and took < ANSWER_WITHIN
            assert "configuration_version" not in body
        # the hung probe finishes once the database answers, and /status says so
        await until_reachable(client, True, within=10)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP listener that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    worker = threading.Thread(target=accept, daemon=True)
    worker.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        worker.join(timeout=5)
        for sock in accepted:
            sock.close()
        server.close()


async def test_status_answers_when_the_database_server_never_answers(black_hole: int) -> None:
    store = Store(f"postgresql://postgres@127.0.0.1:{black_hole}/none", registry.build())
    try:
        async with admin_on(store) as client:
            for _ in range(3):
                body, took = await timed_status(client)
                assert body["database"] == {"reachable": False} and took < ANSWER_WITHIN
    finally:
        await store.close()


async def test_a_local_write_shows_at_once_without_waiting_for_a_probe(store: Store) -> None:
    probe = DatabaseProbe(store, wait=0)  # never waits for the probe it starts
    first = await probe.check()
    assert first.reachable and first.version is not None
    async with store.write():
        pass
    # the probe started now has not answered yet; this node's own commit is known already
    assert await probe.check() == Reachability(True, first.version + 1)
