"""WebSocket through the data plane: the upgrade is forwarded, and after the upstream's 101
both directions are spliced byte for byte (text and binary frames, ws and wss)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.proxy.exchange import Proxy
from gateway.proxy.listeners import DataPlane
from gateway.server import bind
from gateway.settings.listen import Listener
from gateway.snapshot import Holder, Loaded, build_snapshot
from gateway.stats import ServerStats
from gateway.tls.contexts import ServerPolicy
from gateway.tls.store import EMPTY_INDEX, TLSTerminator
from gateway.upstream.pools import Pools
from tests.e2e.proc import free_port
from tests.pki import Pki


@pytest_asyncio.fixture
async def ports(pki: Pki) -> AsyncIterator[tuple[int, int]]:
    async def echo(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text="plain")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stamp = {"created_at": 1, "updated_at": 1}
    rows = {"services": [{"id": "s1", "host": "127.0.0.1", "port": runner.addresses[0][1],
                          "protocol": "http", **stamp}],
            "routes": [{"id": "ws", "paths": ["/ws"], "protocols": ["ws", "wss"],
                        "service": {"id": "s1"}, **stamp},
                       {"id": "web", "paths": ["/web"], "protocols": ["http", "https"],
                        "service": {"id": "s1"}, **stamp}]}
    pools = Pools()
    plane = DataPlane(Proxy(Holder(build_snapshot(Loaded(1, rows))), pools), ServerStats())
    terminator = TLSTerminator(ServerPolicy(min_version="TLS12"),
                               [(pki.read("s003/rsa.crt"), pki.read("s003/rsa.key"))],
                               lambda: EMPTY_INDEX)
    plain, tls = free_port(), free_port()
    socks = [bind(Listener(host="127.0.0.1", port=plain)),
             bind(Listener(host="127.0.0.1", port=tls, ssl=True))]
    await plane.serve([(socks[0], 16)])
    await plane.serve([(socks[1], 16)], terminator.listener_context())
    try:
        yield plain, tls
    finally:
        await plane.stop(grace=1)
        for sock in socks:
            sock.close()
        await pools.close()
        await runner.cleanup()


@pytest.mark.parametrize(("scheme", "path"), [("ws", "/ws/chat"), ("wss", "/ws/chat"),
                                              ("ws", "/web/chat")])
async def test_frames_round_trip(ports: tuple[int, int], scheme: str, path: str) -> None:
    port = ports[0] if scheme == "ws" else ports[1]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{scheme}://127.0.0.1:{port}{path}", ssl=ctx if scheme == "wss" else False,
            timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        for n in range(3):
            await ws.send_str(f"hello {n}")
            assert (await ws.receive(timeout=5)).data == f"echo:hello {n}"
        payload = bytes(range(256)) * 300  # larger than one read
        await ws.send_bytes(payload)
        assert (await ws.receive(timeout=5)).data == payload[::-1]
        await ws.close()
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{ports[0]}/web/x") as plain:
        assert await plain.text() == "plain"  # the same service still answers HTTP
