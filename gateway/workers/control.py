"""What the Admin API process asks of the workers, on a Unix socket per worker in the node's
private run directory: what its balancer thinks of an upstream's targets (passive health is
learnt from the traffic that worker proxied), and "wake up": the Admin API just committed a
write, so the worker reloads now instead of at its next poll (SQLite has no NOTIFY; in one
process the store's commit hook woke the reloader directly). One JSON line each way; never on
the request path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.upstream.balancer import Balancer, Balancers

ASK_TIMEOUT = 2.0  # seconds: a worker that does not answer is left out of the view
_WORST = ("UNHEALTHY", "HEALTHCHECKS_OFF", "HEALTHY")  # merging: the first one any saw


@dataclass(frozen=True, slots=True)
class HealthView:
    checks_on: bool
    available: bool
    targets: dict[str, str]  # target address -> HEALTHY / UNHEALTHY / HEALTHCHECKS_OFF


def view_of(balancer: Balancer) -> HealthView:
    return HealthView(balancer.checks_on, balancer.available(),
                      {address: balancer.status_of(address) for address in balancer.health})


def merge(views: Iterable[HealthView]) -> HealthView | None:
    """The node's view: a target is unhealthy when any worker saw it so, the upstream
    available only when every worker can use it."""
    views = list(views)
    if not views:
        return None
    targets: dict[str, str] = {}
    for view in views:
        for address, status in view.targets.items():
            seen = targets.get(address, "HEALTHY")
            targets[address] = min(seen, status, key=_WORST.index)
    return HealthView(any(v.checks_on for v in views), all(v.available for v in views),
                      targets)


async def serve(path: str, balancers: Balancers, wake: Callable[[], None]) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            if request.get("wake"):
                wake()
                return
            balancer = balancers.get(str(request["upstream"]))
            view = None if balancer is None else view_of(balancer)
            reply = None if view is None else {"checks_on": view.checks_on,
                                               "available": view.available,
                                               "targets": view.targets}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ValueError, KeyError, TypeError, ConnectionError):
            pass  # a broken question gets no answer
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a dead predecessor's on the same board entry
    return await asyncio.start_unix_server(answer, path)


async def ask(path: str, upstream_id: str) -> HealthView | None:
    """One worker's view (None: it has no such balancer, or did not answer in time)."""
    with contextlib.suppress(OSError, ValueError, TimeoutError):
        async with asyncio.timeout(ASK_TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                writer.write(json.dumps({"upstream": upstream_id}).encode() + b"\n")
                reply = json.loads(await reader.readline())
            finally:
                writer.close()
            if reply is not None:
                return HealthView(bool(reply["checks_on"]), bool(reply["available"]),
                                  {str(k): str(v) for k, v in reply["targets"].items()})
    return None


async def wake(path: str) -> None:
    """Tell one worker a write was committed (a worker that does not listen is left to its
    poll)."""
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(ASK_TIMEOUT):
            _, writer = await asyncio.open_unix_connection(path)
            try:
                writer.write(b'{"wake": true}\n')
                await writer.drain()
            finally:
                writer.close()
