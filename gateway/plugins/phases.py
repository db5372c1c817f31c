"""Running a chain's phases for one request (the exchange calls these)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from gateway.plugins.pdk import Hello, Kong
from gateway.plugins.runtime import Chain, Chains, Instance
from gateway.tasks import spawn

log = logging.getLogger("ramparts.plugins")


async def run(chain: Chain, phase: str, kong: Kong) -> None:
    """``rewrite`` or ``access``: in order; a ``kong.response.exit`` (``Exit``) ends it."""
    for slot in chain.slots:
        if phase not in slot.phases:
            continue
        instance = slot.pick(kong.consumer_id, kong.protocol)
        if instance is None:
            continue
        result = getattr(instance.handler, phase)(kong)
        if result is not None:
            await result


def certificate(chains: Chains, ssl_object: Any, server_name: str | None) -> None:
    """Sync, inside the TLS handshake: global instances only (no route is known)."""
    glob = chains.glob
    if not glob.has("certificate"):
        return
    hello = Hello(server_name, ssl_object)
    for slot in glob.slots:
        if "certificate" in slot.phases:
            instance = slot.pick(None, "https")
            if instance is not None:
                instance.handler.certificate(hello)


def picked(chain: Chain, kong: Kong) -> tuple[Instance, ...]:
    """The instances that run after access (the consumer is known by then), in order."""
    out = []
    for slot in chain.slots:
        instance = slot.pick(kong.consumer_id, kong.protocol)
        if instance is not None:
            out.append(instance)
    return tuple(out)


class After:
    """The instances of one request that run once access is over, by phase."""

    __slots__ = ("body", "head", "kong", "log")

    def __init__(self, instances: tuple[Instance, ...], kong: Kong) -> None:
        self.kong = kong
        self.head = tuple(i for i in instances if "header_filter" in i.phases)
        self.body = tuple(i for i in instances if "body_filter" in i.phases)
        self.log = tuple(i for i in instances if "log" in i.phases)

    def header_filter(self, status: int, headers: list[tuple[bytes, bytes]], source: str
                      ) -> tuple[int, list[tuple[bytes, bytes]]]:
        response = self.kong.response
        response.status, response.headers, response.source = status, headers, source
        for instance in self.head:
            instance.handler.header_filter(self.kong)
        return response.status, response.headers

    def body_filter(self, chunk: bytes, eof: bool) -> bytes:
        for instance in self.body:
            chunk = instance.handler.body_filter(self.kong, chunk, eof)
        return chunk

    def schedule_log(self) -> None:
        """``log`` runs after the response is sent, off the request's path: on the next
        loop iteration, once the last write is with the transport."""
        if self.log:
            asyncio.get_running_loop().call_soon(_log, self.log, self.kong)


def _log(instances: tuple[Instance, ...], kong: Kong) -> None:
    for instance in instances:
        try:
            result = instance.handler.log(kong)
        except Exception:
            log.exception("plugin %s: log phase failed", instance.name)
            continue
        if result is not None:
            spawn(_awaited(result), f"log-{instance.name}")


async def _awaited(result: Awaitable[None]) -> None:
    await result
