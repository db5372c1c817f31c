"""``GET /status/cluster``: every node seen in the last ``cluster_node_ttl`` seconds, the version
it serves, how far behind it is; with ``?wait_for=<version>&timeout=<s>`` the answer waits until
every live node applied that version (so a deploy script knows its change is live everywhere).

On timeout the answer is **504** (the nodes, not the caller, were too slow; 408 would blame the
client) with the same body plus ``message`` and the ``laggards``' ids.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from admin.http import Resource, json_response
from gateway import cluster
from gateway.db import nodes
from gateway.db.store import Store
from gateway.errors import InvalidOptions

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 60.0
POLL = 0.1  # seconds between reads while waiting (each one indexed query)
_VERSION = re.compile(r"[0-9]{1,18}")  # ASCII digits that fit a BIGINT
_SECONDS = re.compile(r"[0-9]{1,4}(\.[0-9]{1,3})?")


@dataclass(frozen=True, slots=True)
class Wait:
    version: int | None
    timeout: float


def parse_wait(query: Any) -> Wait:
    """``wait_for`` (a configuration version) and ``timeout`` (seconds, at most 60); every
    bad value reported at once (Kong's code 11)."""
    problems: dict[str, str] = {}
    raw_version, raw_timeout = query.get("wait_for"), query.get("timeout")
    version = timeout = None
    if raw_version is not None:
        if _VERSION.fullmatch(raw_version):
            version = int(raw_version)
        else:
            problems["wait_for"] = "expected a configuration version (a non-negative integer)"
    if raw_timeout is not None:
        if _SECONDS.fullmatch(raw_timeout) and float(raw_timeout) <= MAX_TIMEOUT:
            timeout = float(raw_timeout)
        else:
            problems["timeout"] = f"expected seconds between 0 and {MAX_TIMEOUT:g}"
        if raw_version is None:
            problems["timeout"] = "only meaningful with wait_for"
    if problems:
        raise InvalidOptions(problems)
    return Wait(version, DEFAULT_TIMEOUT if timeout is None else timeout)


def routes(store: Store, ttl: float) -> list[BaseRoute]:
    async def status_cluster(request: Request) -> Response:
        wait = parse_wait(request.query_params)
        answer = await _read(store, ttl, wait.version)
        if wait.version is None:
            return json_response(200, answer)
        deadline = time.monotonic() + wait.timeout
        while not cluster.reached(answer):
            left = deadline - time.monotonic()
            if left <= 0:
                laggards = len(answer["laggards"])
                answer["message"] = (
                    f"timed out after {wait.timeout:g} s waiting for configuration version "
                    f"{wait.version}: {laggards} of {len(answer['data'])} live nodes behind"
                    if answer["data"] else
                    f"timed out after {wait.timeout:g} s: no live node")
                return json_response(504, answer)
            await asyncio.sleep(min(POLL, left))
            answer = await _read(store, ttl, wait.version)
        return json_response(200, answer)

    return [Route("/status/cluster", Resource(get=status_cluster))]


async def _read(store: Store, ttl: float, wait_for: int | None) -> dict[str, Any]:
    version, seen = await nodes.live(store, ttl)
    return cluster.view(version, seen, wait_for)
