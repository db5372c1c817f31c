"""The plugin phases on the real data plane (in process: our listener, a real upstream, a
snapshot built from plugin rows with test handlers): phase order, priority order, Kong's
instance lookup, a short-circuit from access, header and body filters, log after the
response, and the fail-closed guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.plugins.pdk import Consumer, Kong
from gateway.plugins.runtime import Handler
from gateway.proxy.exchange import Exchange
from gateway.snapshot import Loaded, build_snapshot
from tests.proxy.plane import proxy_on, uncollected

EVENTS: list[str] = []
RELEASE: list[asyncio.Event] = []  # the log phase waits for it: set once the client has all


class Trace(Handler):
    """Global: records every phase it sees."""

    PRIORITY = 5000

    def rewrite(self, kong: Kong) -> None:
        EVENTS.append("rewrite")

    def access(self, kong: Kong) -> None:
        EVENTS.append("access:trace")

    def header_filter(self, kong: Kong) -> None:
        EVENTS.append(f"header_filter:{kong.response.status}")

    def body_filter(self, kong: Kong, chunk: bytes, eof: bool) -> bytes:
        if eof:
            EVENTS.append("body_filter:eof")
        return chunk

    async def log(self, kong: Kong) -> None:
        # a log that waits for the client to have its whole response: were it on the
        # response's path, the response would never complete
        if RELEASE:
            await RELEASE[0].wait()
        EVENTS.append(f"log:{kong.response.status}:{kong.consumer_id}")


class KeyAuth(Handler):
    PRIORITY = 1250

    def access(self, kong: Kong) -> None:
        EVENTS.append("access:key")
        if kong.request.get_header("x-key") != self.config["key"]:
            raise kong.response.exit(401, {"message": "No API key found in request"})
        kong.client.authenticate(Consumer(id="c1", username="alice"), {"key": "k"})
        kong.service_request.set_header("X-Consumer-Username", "alice")
        kong.service_request.clear_header("X-Key")


class Tag(Handler):
    """Runs after the auth plugin: its consumer-scoped instance applies once it knows."""

    PRIORITY = 800

    def header_filter(self, kong: Kong) -> None:
        kong.response.set_header("X-Tag", self.config["tag"])


class Broken(Handler):
    PRIORITY = 5

    def access(self, kong: Kong) -> None:
        raise RuntimeError("a bug")


class Upper(Handler):
    PRIORITY = 10

    def body_filter(self, kong: Kong, chunk: bytes, eof: bool) -> bytes:
        return chunk.upper()


class Sign(Handler):
    """Changes the body's size: clears Content-Length first, as a Kong plugin must."""

    PRIORITY = 10

    def header_filter(self, kong: Kong) -> None:
        assert kong.response.get_header("Content-Length") is not None  # the upstream's
        kong.response.clear_header("Content-Length")

    def body_filter(self, kong: Kong, chunk: bytes, eof: bool) -> bytes:
        return chunk + b"-signed" if eof else chunk


CHUNKS: list[tuple[bytes, bool, bool]] = []  # (chunk, eof, whether "second" was written)
SECOND_WRITTEN = asyncio.Event()


class Chunks(Handler):
    """Records what each body_filter call sees."""

    PRIORITY = 10

    def body_filter(self, kong: Kong, chunk: bytes, eof: bool) -> bytes:
        CHUNKS.append((chunk, eof, SECOND_WRITTEN.is_set()))
        return chunk


HANDLERS: Mapping[str, type[Handler]] = {"trace": Trace, "key-auth": KeyAuth, "tag": Tag,
                                         "upper": Upper, "sign": Sign, "broken": Broken,
                                         "chunks": Chunks}


def plugin(ident: str, name: str, route: str | None = None, consumer: str | None = None,
           service: str | None = None, **config: Any) -> dict[str, Any]:
    return {"id": ident, "name": name, "enabled": True, "protocols": ["http", "https"],
            "route": {"id": route} if route else None,
            "service": {"id": service} if service else None,
            "consumer": {"id": consumer} if consumer else None, "config": config}


def rows(upstream_port: int) -> dict[str, list[dict[str, Any]]]:
    stamp = {"created_at": 1, "updated_at": 1}
    service = {"id": "s1", "host": "127.0.0.1", "port": upstream_port, "protocol": "http",
               **stamp}
    routes = [{"id": r, "paths": [f"/{r}"], "protocols": ["http", "https"],
               "service": {"id": "s1"}, **stamp}
              for r in ("keyed", "open", "upper", "sign", "acl", "broken", "chunks")]
    return {"services": [service], "routes": routes, "plugins": [
        plugin("p-trace", "trace"),
        plugin("p-key", "key-auth", route="keyed", key="k"),
        plugin("p-tag-route", "tag", route="keyed", tag="route"),
        plugin("p-tag-consumer", "tag", consumer="c1", tag="consumer"),
        plugin("p-tag-service", "tag", service="s1", tag="service"),
        plugin("p-upper", "upper", route="upper"),
        plugin("p-sign", "sign", route="sign"),
        plugin("p-acl", "acl", route="acl", allow=["x"]),  # configured, no handler
        plugin("p-broken", "broken", route="broken"),
        plugin("p-chunks", "chunks", route="chunks"),
    ]}


@pytest_asyncio.fixture
async def proxy_port() -> AsyncIterator[int]:
    async def echo(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/stream"):  # two chunks, 0.3 s apart
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"first")
            await asyncio.sleep(0.3)
            SECOND_WRITTEN.set()
            await response.write(b"second")
            await response.write_eof()
            return response
        return web.json_response({"headers": dict(request.headers)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    snapshot = build_snapshot(Loaded(1, rows(runner.addresses[0][1])), handlers=HANDLERS)
    try:
        async with proxy_on(snapshot) as port:
            yield port
    finally:
        await runner.cleanup()


async def get(port: int, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}", headers=headers)


async def wait_for_event(prefix: str) -> str:
    async with asyncio.timeout(3):
        while not any(e.startswith(prefix) for e in EVENTS):
            await asyncio.sleep(0.02)
    return next(e for e in EVENTS if e.startswith(prefix))


async def test_phases_run_in_order_and_log_after_the_response(proxy_port: int) -> None:
    EVENTS.clear()
    RELEASE[:] = [asyncio.Event()]
    try:
        r = await get(proxy_port, "/keyed/x", **{"X-Key": "k"})
        assert r.status_code == 200
        assert not any(e.startswith("log") for e in EVENTS)  # waiting for RELEASE
    finally:
        RELEASE[0].set()
    assert await wait_for_event("log") == "log:200:c1"
    RELEASE.clear()
    assert EVENTS == ["rewrite", "access:trace", "access:key", "header_filter:200",
                      "body_filter:eof", "log:200:c1"]
    seen = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert seen["x-consumer-username"] == "alice" and "x-key" not in seen
    assert r.headers["x-tag"] == "consumer"  # the consumer's instance, once auth named it


async def test_exit_from_access_short_circuits(proxy_port: int) -> None:
    EVENTS.clear()
    r = await get(proxy_port, "/keyed/x")
    assert r.status_code == 401 and r.json() == {"message": "No API key found in request"}
    assert r.headers["x-tag"] == "route"  # no consumer: the route's instance
    assert await wait_for_event("log") == "log:401:None"
    assert "body_filter:eof" in EVENTS


async def test_lookup_falls_back_to_the_service_and_filters_bodies(proxy_port: int) -> None:
    r = await get(proxy_port, "/open/x")
    assert r.status_code == 200 and r.headers["x-tag"] == "service"
    r = await get(proxy_port, "/upper/x", **{"X-Lower": "abc"})
    assert r.status_code == 200 and '"X-LOWER": "ABC"' in r.text  # the body filter ran


async def test_content_length_stays_unless_a_header_filter_clears_it(proxy_port: int) -> None:
    # Kong's rule (body_filter_by_lua's): a body filter alone does not drop Content-Length
    r = await get(proxy_port, "/upper/x")
    assert r.headers["content-length"] == str(len(r.content))
    assert "transfer-encoding" not in r.headers
    r = await get(proxy_port, "/sign/x")  # its size changes: cleared, so chunked
    assert r.status_code == 200 and r.text.endswith("}-signed")
    assert "content-length" not in r.headers and r.headers["transfer-encoding"] == "chunked"


async def test_body_filters_see_the_last_chunk_with_eof_and_streams_undelayed(
        proxy_port: int) -> None:
    """A body that ends in the read that brings it reaches the filters once, with eof (as
    nginx's last buffer does); a streamed body is filtered read by read, never held back
    until the upstream's next write."""
    CHUNKS.clear()
    r = await get(proxy_port, "/chunks/x")
    seen = list(CHUNKS)
    assert r.status_code == 200 and seen == [(r.content, True, False)]
    CHUNKS.clear()
    SECOND_WRITTEN.clear()
    r = await get(proxy_port, "/chunks/stream")
    assert r.content == b"firstsecond"
    assert CHUNKS[0] == (b"first", False, False)  # filtered before "second" was written
    assert b"".join(c for c, _, _ in CHUNKS) == b"firstsecond"
    assert [eof for _, eof, _ in CHUNKS] == [False] * (len(CHUNKS) - 1) + [True]


async def test_a_configured_plugin_without_a_handler_fails_closed(proxy_port: int) -> None:
    r = await get(proxy_port, "/acl/x")
    assert r.status_code == 500 and r.json()["message"] == "An unexpected error occurred"
    r = await get(proxy_port, "/broken/x")  # a handler that raises: 500, not proxied
    assert r.status_code == 500 and r.json()["message"] == "An unexpected error occurred"


@pytest.mark.parametrize("path", ["/nowhere"])
async def test_unrouted_requests_see_global_plugins_only(proxy_port: int, path: str) -> None:
    EVENTS.clear()
    r = await get(proxy_port, path)
    assert r.status_code == 404 and "x-tag" not in r.headers
    assert EVENTS[:2] == ["rewrite", "header_filter:404"]


async def test_an_exchange_is_freed_without_the_collector(proxy_port: int) -> None:
    # Kong's source is the exchange: were the pair left linked after the request, only the
    # garbage collector would free them (a collection every few requests with plugins)
    EVENTS.clear()
    with uncollected(Exchange, Kong) as left:
        for path in ("/open/x", "/upper/x"):
            assert (await get(proxy_port, path)).status_code == 200
        await wait_for_event("log")
    assert left == []
