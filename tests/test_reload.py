"""The reloader when a stored version cannot be built: the last good snapshot keeps serving,
/status shows both versions and why, the error is logged again until it is fixed, and the
fix goes live. Rows the Admin API would refuse are written behind its back, as a row from an
older release or another tool could be."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from admin.app import create_app
from admin.meta import NodeInfo
from gateway.db import tables
from gateway.db.store import Store
from gateway.reload import Reloader
from gateway.router.router import Request
from gateway.schema.entities.routes import ROUTES
from gateway.schema.validate import validate
from gateway.settings.load import load
from gateway.snapshot import Holder, Snapshot
from tests.conftest import wipe

RETRY = 0.3  # seconds between rebuilds of a failing version (15 s in production)


@pytest_asyncio.fixture
async def node(store: Store) -> AsyncIterator[tuple[Reloader, httpx.AsyncClient]]:
    await wipe(store)
    reloader = Reloader(store, Holder(), retry_failed=RETRY)
    info = NodeInfo(settings=load(env={}), node_id=str(uuid.uuid4()), reloader=reloader)
    transport = httpx.ASGITransport(app=create_app(store, info))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield reloader, client
    store.on_commit.remove(reloader._wake.set)


async def write_behind_the_api(store: Store, **fields: Any) -> str:
    """A route stored without the Admin API's checks (the version is bumped as by a write)."""
    ident = str(uuid.uuid4())
    values = validate(ROUTES.record, {"id": ident, "created_at": 1, "updated_at": 1,
                                      "paths": ["/bad"]})
    row = store.dao("routes").to_row({**values, **fields})
    async with store.write() as conn:
        await conn.execute(sa.insert(tables.table("routes")).values(row))
    return ident


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/status")).json()
    return body


def build_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ramparts.reload"
            and r.levelno == logging.ERROR and "cannot be built" in r.getMessage()]


async def test_a_version_that_cannot_be_built_is_reported_until_fixed(
        node: tuple[Reloader, httpx.AsyncClient], store: Store,
        caplog: pytest.LogCaptureFixture) -> None:
    reloader, client = node
    caplog.set_level(logging.ERROR, logger="ramparts.reload")
    r = await client.put("/routes/good", json={"paths": ["/good"]})
    assert r.status_code == 200
    assert await reloader.check()
    good = reloader.holder.current.version
    assert "configuration_error" not in await status(client)

    bad = await write_behind_the_api(store, headers={"x-v": ["~*("]})
    assert not await reloader.check()
    body = await status(client)
    assert body["configuration_version"] == good + 1  # what is stored...
    assert body["applied_configuration_version"] == good  # ...next to what is served
    assert body["configuration_error"].startswith(
        f"configuration version {good + 1} cannot be built: RegexError: route regex '(': "
        "missing ): ("), body
    assert reloader.holder.current.version == good

    # the error line repeats (each a real rebuild) until the configuration is fixed
    deadline = time.monotonic() + 10
    while len(build_errors(caplog)) < 3 and time.monotonic() < deadline:
        await reloader.check()
        await asyncio.sleep(0.05)
    lines = build_errors(caplog)
    assert len(lines) >= 3
    assert lines[0].exc_info is not None and all(r.exc_info is None for r in lines[1:])
    assert all(b.created - a.created >= RETRY * 0.9 for a, b in itertools.pairwise(lines))

    # a later write cannot go live while the bad row is stored; deleting it fixes both
    assert (await client.put("/routes/later", json={"paths": ["/later"]})).status_code == 200
    assert not await reloader.check()
    assert (await client.delete(f"/routes/{bad}")).status_code == 204
    assert await reloader.check()
    body = await status(client)
    assert "configuration_error" not in body and reloader.failure is None
    assert body["applied_configuration_version"] == body["configuration_version"] == good + 3
    router = reloader.holder.current.router
    assert [getattr(router.match(Request("GET", "h", 80, path, {})), "route", None) is not None
            for path in ("/good", "/later", "/bad")] == [True, True, False]


async def test_a_path_regex_re2_cannot_run_is_reported(
        node: tuple[Reloader, httpx.AsyncClient], store: Store) -> None:
    # a lookaround an older release (Python's re) accepted: the build says why it fails
    reloader, client = node
    await write_behind_the_api(store, paths=["~/(?=x)"])
    assert not await reloader.check()
    body = await status(client)
    assert body["applied_configuration_version"] is None  # nothing was ever built
    assert "invalid perl operator: (?=" in body["configuration_error"]


async def test_a_failing_after_swap_hook_does_not_undo_the_swap(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await wipe(store)

    def broken(snapshot: Snapshot) -> None:
        raise RuntimeError("hook failed")

    reloader = Reloader(store, Holder(), after_swap=[broken])
    try:
        async with store.write():
            pass  # a version to load
        assert await reloader.check()
        assert reloader.holder.current.version == await store.config_version()
        assert any(r.exc_info and "hook failed" in str(r.exc_info[1]) for r in caplog.records
                   if r.name == "ramparts.reload" and r.levelno == logging.ERROR)
    finally:
        store.on_commit.remove(reloader._wake.set)
