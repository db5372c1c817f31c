"""A child's side of the status board: its counters and configuration version, written every
``PUBLISH_INTERVAL`` seconds and at once on a swap or a change of state (off the request
path: the request path only bumps plain counters)."""

from __future__ import annotations

import asyncio
import os
import time

from gateway.reload import Reloader
from gateway.stats import ServerStats
from gateway.tasks import spawn
from gateway.workers.board import PUBLISH_INTERVAL, STARTING, Board, Entry


class Publisher:
    def __init__(self, board: Board, entry: int, role: int, stats: ServerStats,
                 reloader: Reloader | None = None) -> None:
        self.board = board
        self.entry = entry
        self.role = role
        self.stats = stats
        self.reloader = reloader
        self.state = STARTING
        self._task: asyncio.Task[None] | None = None

    def publish(self, *_: object) -> None:
        """Write now (also an ``after_swap`` hook)."""
        s, r = self.stats, self.reloader
        version, applied_at, failed, error = -1, 0.0, -1, ""
        if r is not None:
            version = r.holder.current.version
            applied_at = r.applied_at or 0.0
            if r.failure is not None:
                failed = r.failure.version
                error = (f"configuration version {r.failure.version} cannot be built: "
                         f"{r.failure.error}")
        self.board.write(self.entry, Entry(
            os.getpid(), self.role, self.state, s.connections_accepted, s.connections_active,
            s.connections_handled, s.requests_active, s.total_requests, version, applied_at,
            failed, time.time(), error, s.tls_handshakes_failed))

    def set_state(self, state: int) -> None:
        self.state = state
        self.publish()

    def start(self) -> None:
        self._task = spawn(self._run(), "status-board")

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_INTERVAL)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
