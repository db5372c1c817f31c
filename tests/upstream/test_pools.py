"""Upstream pools drain: a session a new snapshot no longer uses closes only when idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gateway.tls.client import ClientProfile
from gateway.upstream.pools import Pools


@pytest.fixture
async def slow_origin() -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 whose /stream sends a chunk every 50 ms, 20 times."""
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(20):
            await resp.write(b"x")
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/stream"
    finally:
        await runner.cleanup()


def pool_of_one_profile(drain: float) -> tuple[Pools, aiohttp.ClientSession]:
    pools = Pools(drain=drain)
    profile = ClientProfile(verify=False, system_ca=False)
    pools.prepare([profile])
    return pools, pools.session(profile)


async def test_a_retired_pool_waits_for_its_download(slow_origin: str) -> None:
    pools, session = pool_of_one_profile(drain=0.1)
    try:
        async with session.get(slow_origin) as resp:
            first = await resp.content.readany()
            pools.retain([])  # the new snapshot no longer uses this profile
            await asyncio.sleep(0.4)  # four drain periods: still in use, so still open
            assert not session.closed
            rest = await resp.read()  # the download finishes on its old connection
        assert len(first) + len(rest) == 20
        for _ in range(40):  # idle now: the next drain check closes it
            if session.closed:
                break
            await asyncio.sleep(0.05)
        assert session.closed
    finally:
        await pools.close()


async def test_close_closes_retiring_pools() -> None:
    pools, session = pool_of_one_profile(drain=60)
    pools.retain([])
    assert not session.closed
    await pools.close()  # shutdown does not leave the retiring session open
    assert session.closed
