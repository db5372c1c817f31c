"""Rollout you can see: this node's heartbeat, and the cluster's view of who serves what.

Each node writes, every ``cluster_heartbeat`` seconds and at once after each swap, the
configuration version it serves to ``ramparts_nodes``. ``GET /status/cluster`` reads every node
seen in the last ``cluster_node_ttl`` seconds; ``view`` (pure) turns that into the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from gateway.db import nodes
from gateway.db.nodes import NodeState, SeenNode
from gateway.db.store import Store
from gateway.reload import Reloader
from gateway.tasks import spawn

log = logging.getLogger("ramparts.cluster")


def view(version: int, seen: list[SeenNode], wait_for: int | None = None) -> dict[str, Any]:
    """The cluster as ``/status/cluster`` shows it. A node is current when it serves the
    stored version (or a newer one it read after this answer's read); ``lag`` counts the
    versions it is behind. With ``wait_for``, ``laggards`` names the nodes below it."""
    data = []
    for node in seen:
        state = node.state
        item: dict[str, Any] = {
            "id": state.id, "hostname": state.hostname,
            "applied_configuration_version": state.applied_version,
            "applied_at": state.applied_at, "last_seen": round(node.age, 3),
            "lag": max(0, version - state.applied_version),
            "current": state.applied_version >= version}
        if state.configuration_error:
            item["configuration_error"] = state.configuration_error
        data.append(item)
    out: dict[str, Any] = {"configuration_version": version,
                           "current": bool(data) and all(n["current"] for n in data),
                           "data": data}
    if wait_for is not None:
        out["wait_for"] = wait_for
        out["laggards"] = [n["id"] for n in data
                           if n["applied_configuration_version"] < wait_for]
    return out


def reached(answer: dict[str, Any]) -> bool:
    """Every live node applied ``wait_for`` (and at least one node is live)."""
    return bool(answer["data"]) and not answer["laggards"]


class Heartbeat:
    """Writes this node's state every ``interval`` seconds and right after each swap; a
    database outage only skips beats (the node keeps serving, the row ages)."""

    def __init__(self, store: Store, state: Callable[[], NodeState], interval: float) -> None:
        self.store = store
        self.state = state
        self.interval = interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = spawn(self.run(), "heartbeat")

    def poke(self, *_: object) -> None:
        """Beat now (an ``after_swap`` hook: the new version shows within one write)."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)

    async def _beat(self) -> None:
        try:
            await nodes.beat(self.store, self.state())
        except Exception as exc:  # an outage must never stop the heartbeat
            if not self._failing:
                log.warning("cannot write this node's heartbeat (%s)",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self._failing = True
        else:
            self._failing = False

    async def stop(self, patience: float = 2.0) -> None:
        """Leave the cluster view, after the last beat (which would write the row back):
        best effort, at most ``patience`` seconds in all (a database that is down or hangs
        cannot be told; the row then ages out). Nothing is cancelled mid-transaction."""
        self._stopping = True
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + patience
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=patience)
            if not self._task.done():
                return
        leave = spawn(self._leave(), "heartbeat-leave")
        await asyncio.wait({leave}, timeout=max(0.0, deadline - asyncio.get_running_loop()
                                               .time()))

    async def _leave(self) -> None:
        try:
            await nodes.leave(self.store, self.state().id)
        except Exception as exc:  # the row ages out of /status/cluster instead
            log.info("cannot remove this node from ramparts_nodes (%s)", exc)


def state_of(node_id: str, hostname: str, reloader: Reloader) -> NodeState:
    """What this node's heartbeat says: the version it serves, when, and why it cannot serve
    a newer one (a failed build)."""
    failure = reloader.failure
    error = None if failure is None else \
        f"configuration version {failure.version} cannot be built: {failure.error}"
    return NodeState(node_id, hostname, max(reloader.holder.current.version, 0),
                     reloader.applied_at, error)
