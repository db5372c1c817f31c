"""A proxy connection's TLS facts (``Downstream.tls``) on a real TLS listener of the data
plane, with real client certificates."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from gateway.errors_proxy import Reply
from gateway.proxy.body import RequestBody
from gateway.proxy.connection import Downstream
from gateway.proxy.http1 import RequestHead
from gateway.proxy.listeners import DataPlane
from gateway.server import bind
from gateway.settings.listen import Listener
from gateway.stats import ServerStats
from gateway.tls.contexts import ServerPolicy
from gateway.tls.store import EMPTY_INDEX, TLSTerminator
from tests.e2e.proc import free_port
from tests.pki import Pki


async def echo_tls(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    """A handler in place of the exchange: answers the connection's TLS facts."""
    facts = json.dumps(conn.tls).encode()
    conn.reply(Reply(200, [(b"content-type", b"application/json")], facts), head)


@pytest_asyncio.fixture
async def listener(pki: Pki) -> AsyncIterator[int]:
    policy = ServerPolicy(client_ca=pki.read("s003/ca.crt"), min_version="TLS12")
    terminator = TLSTerminator(policy, [(pki.read("s003/rsa.crt"), pki.read("s003/rsa.key"))],
                               lambda: EMPTY_INDEX)
    port = free_port()
    sock = bind(Listener(host="127.0.0.1", port=port, ssl=True))
    plane = DataPlane(echo_tls, ServerStats())
    await plane.serve([(sock, 16)], terminator.listener_context())
    yield port
    await plane.stop(grace=1)
    sock.close()


async def fetch(port: int, cert: tuple[str, str] | None, version: ssl.TLSVersion) -> Any:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = version
    if cert:
        ctx.load_cert_chain(*cert)
    async with aiohttp.ClientSession() as session, session.get(
            f"https://127.0.0.1:{port}/", ssl=ctx, server_hostname="scope.test") as resp:
        return await resp.json()


async def test_trusted_client_chain(listener: int, pki: Pki) -> None:
    info = await fetch(listener, (pki.path("s003/client.crt"), pki.path("s003/client.key")),
                       ssl.TLSVersion.TLSv1_3)
    assert info["tls_version"] == 0x0304 and isinstance(info["cipher_suite"], int)
    assert info["server_name"] == "scope.test" and info["alpn"] is None
    assert info["client_cert_name"] == "CN=api-client"
    assert info["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert info["client_cert_error"] is None and info["client_cert_verified"] is True
    assert "BEGIN CERTIFICATE" in info["server_cert"]


async def test_untrusted_and_missing(listener: int, pki: Pki) -> None:
    info = await fetch(listener, (pki.path("s001/client.crt"), pki.path("s001/client.key")),
                       ssl.TLSVersion.TLSv1_2)
    assert info["tls_version"] == 0x0303
    assert info["client_cert_verified"] is False
    assert "unable to verify the first certificate" in info["client_cert_error"]
    info = await fetch(listener, None, ssl.TLSVersion.TLSv1_3)
    assert info["client_cert_chain"] == [] and info["client_cert_name"] is None
