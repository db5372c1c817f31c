"""A real upstream for the proxy tests, run as its own process:

    python -m tests.e2e.upstream PORT [NAME] [status=CODE | delay=SECONDS]

``/bytes/N`` streams N bytes (generated, never held in memory), ``/slow/S`` answers after S
seconds, ``POST /count`` reads the body as a stream and answers its length and SHA-256, and any
other path echoes the request (method, path, query, headers, body size) as JSON. Every answer
carries ``X-Upstream: NAME``. ``status=500`` makes every answer a 500 and ``delay=2`` makes
every answer wait two seconds (a sick target, for health-check tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

from aiohttp import web

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({
        "method": request.method, "path": request.raw_path.split("?", 1)[0],
        "query": request.raw_path.partition("?")[2],
        "headers": {k: v for k, v in request.headers.items()},
        "header_list": [[k, v] for k, v in request.headers.items()],
        "body_size": len(body), "name": request.app["name"],
        "peer": list((request.transport.get_extra_info("peername") if request.transport
                      else None) or ()),
    }, headers={"X-Upstream": request.app["name"]})


async def stream_bytes(request: web.Request) -> web.StreamResponse:
    total = int(request.match_info["n"])
    resp = web.StreamResponse(headers={"X-Upstream": request.app["name"],
                                       "Content-Type": "application/octet-stream"})
    resp.content_length = total
    await resp.prepare(request)
    sent = 0
    while sent < total:
        piece = CHUNK[:min(len(CHUNK), total - sent)]
        await resp.write(piece)
        sent += len(piece)
    await resp.write_eof()
    return resp


STREAMS: dict[str, str] = {}  # stream id -> "open" | "closed"


async def endless(request: web.Request) -> web.StreamResponse:
    """A chunked stream (bounded at 30 s); ``/streams?id=`` tells whether it is still open."""
    stream_id = request.query.get("id", "")
    resp = web.StreamResponse(headers={"X-Upstream": request.app["name"]})
    await resp.prepare(request)
    STREAMS[stream_id] = "open"
    try:
        for _ in range(600):
            await resp.write(b"tick\n")
            await asyncio.sleep(0.05)
    finally:
        STREAMS[stream_id] = "closed"
    await resp.write_eof()
    return resp


async def streams(request: web.Request) -> web.Response:
    return web.json_response({"state": STREAMS.get(request.query.get("id", ""))})


async def count(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"size": size, "sha256": digest.hexdigest()},
                             headers={"X-Upstream": request.app["name"]})


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.match_info["s"]))
    return web.json_response({"slept": True}, headers={"X-Upstream": request.app["name"]})


def sick(mode: str) -> web.middleware:  # type: ignore[valid-type]
    kind, _, value = mode.partition("=")

    @web.middleware
    async def middleware(request: web.Request, handler: object) -> web.StreamResponse:
        if kind == "delay":
            await asyncio.sleep(float(value))
        return web.json_response({"sick": mode}, status=int(value) if kind == "status" else 200,
                                 headers={"X-Upstream": request.app["name"]})

    return middleware


def make_app(name: str, mode: str | None = None) -> web.Application:
    app = web.Application(client_max_size=0, middlewares=[sick(mode)] if mode else [])
    app["name"] = name
    app.router.add_route("*", "/bytes/{n}", stream_bytes)
    app.router.add_get("/endless", endless)
    app.router.add_get("/streams", streams)
    app.router.add_post("/count", count)
    app.router.add_route("*", "/slow/{s}", slow)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    web.run_app(make_app(sys.argv[2] if len(sys.argv) > 2 else "upstream",
                         sys.argv[3] if len(sys.argv) > 3 else None),
                host=os.environ.get("UPSTREAM_HOST", "127.0.0.1"), port=port, print=None,
                access_log=None)
