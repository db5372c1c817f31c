"""The Admin API's server context (gateway/tls/admin.py), handshaking with real clients."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from gateway.settings.load import load
from gateway.tls.admin import admin_context
from tests.pki import UpstreamPki


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
                    ) -> dict[str, object]:
    """One real TLS handshake on loopback; returns what the server saw."""
    seen: dict[str, object] = {}
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        obj = writer.get_extra_info("ssl_object")
        seen["peer"] = obj.getpeercert(binary_form=True)
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                  server_hostname="localhost")
        await asyncio.wait_for(done.wait(), 10)
        writer.close()
    finally:
        server.close()
    return seen


async def test_default_pair_is_generated_and_no_client_certificate_is_asked(
        tmp_path: Path) -> None:
    settings = load(env={"RAMPARTS_PREFIX": str(tmp_path), "RAMPARTS_ADMIN_LISTEN":
                         "127.0.0.1:8444 ssl"})
    ctx = admin_context(settings)
    key = tmp_path / "ssl" / "ramparts-default.key"
    assert key.stat().st_mode & 0o777 == 0o600
    client = ssl.create_default_context(cafile=str(tmp_path / "ssl" / "ramparts-default.crt"))
    client.load_verify_locations(str(tmp_path / "ssl" / "ramparts-default-ecdsa.crt"))
    assert (await handshake(ctx, client))["peer"] is None


async def test_client_ca_asks_for_a_certificate_but_does_not_require_one(
        upki: UpstreamPki) -> None:
    settings = load(env={"RAMPARTS_ADMIN_LISTEN": "127.0.0.1:8444 ssl",
                         "RAMPARTS_ADMIN_SSL_CERT": upki.path("depth0.crt"),
                         "RAMPARTS_ADMIN_SSL_CERT_KEY": upki.path("depth0.key"),
                         "RAMPARTS_ADMIN_SSL_CLIENT_CA": upki.path("clientca.crt")})
    ctx = admin_context(settings)
    client = ssl.create_default_context(cafile=upki.path("root.crt"))
    assert (await handshake(ctx, client))["peer"] is None  # tokens still work over TLS
    client.load_cert_chain(upki.path("gateway-svc.crt"), upki.path("gateway-svc.key"))
    assert (await handshake(ctx, client))["peer"]
