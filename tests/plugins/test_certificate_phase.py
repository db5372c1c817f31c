"""The certificate phase runs inside real TLS handshakes, for global instances only."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from gateway.errors_proxy import Reply
from gateway.plugins import phases
from gateway.plugins.pdk import Hello
from gateway.plugins.runtime import Handler, Row, build_chains
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

HELLOS: list[tuple[str, str | None, bool]] = []


class SeeHello(Handler):
    PRIORITY = 10

    def certificate(self, hello: Hello) -> None:
        HELLOS.append((self.config["tag"], hello.server_name, hello.ssl_object is not None))


async def ok(conn: Downstream, head: RequestHead, body: RequestBody | None) -> None:
    conn.reply(Reply(200, [], b"ok"), head)


def row(ident: str, route: str | None, tag: str) -> Row:
    return Row(id=ident, name="see-hello", route=route, service=None, consumer=None,
               config={"tag": tag}, protocols=("https",))


async def handshake(port: int, name: str | None) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname=name or "")
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert (await reader.read()).endswith(b"ok")
    writer.close()


async def test_global_certificate_plugins_see_each_handshake(pki: Pki) -> None:
    chains = build_chains([row("g", None, "global"), row("r", "r1", "route")], {"r1": None},
                          {"see-hello": SeeHello})
    terminator = TLSTerminator(ServerPolicy(min_version="TLS12"),
                               [(pki.read("s003/rsa.crt"), pki.read("s003/rsa.key"))],
                               lambda: EMPTY_INDEX)
    terminator.on_hello = lambda obj, name: phases.certificate(chains, obj, name)
    port = free_port()
    sock = bind(Listener(host="127.0.0.1", port=port, ssl=True))
    plane = DataPlane(ok, ServerStats())
    await plane.serve([(sock, 16)], terminator.listener_context())
    try:
        HELLOS.clear()
        await handshake(port, "cert.test")
        await handshake(port, None)
        expected: list[Any] = [("global", "cert.test", True), ("global", None, True)]
        # once per ClientHello (a HelloRetryRequest makes two); never the route's instance
        assert list(dict.fromkeys(HELLOS)) == expected
    finally:
        await plane.stop(grace=1)
        sock.close()
