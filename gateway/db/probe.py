"""A reachability probe that never makes its caller wait on the database.

``/status`` is a liveness probe: it must answer from the node's own state even while the
database hangs (a table locked, a server that accepts and never answers). One probe query runs
at a time in the background; a caller waits for it at most ``wait`` seconds (``first_wait``
before there is any answer) and otherwise gets the last answer, until the probe has been
pending for ``patience`` seconds: then the database counts as unreachable. A hung probe is
never cancelled (cancelling a driver mid-query can hang its cleanup too); the driver's own
timeouts end it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from gateway.db.store import Store
from gateway.tasks import spawn


@dataclass(frozen=True, slots=True)
class Reachability:
    reachable: bool
    version: int | None = None  # the stored configuration version, when reachable


UNREACHABLE = Reachability(False)


class DatabaseProbe:
    def __init__(self, store: Store, *, wait: float = 0.05, first_wait: float = 0.5,
                 patience: float = 1.0) -> None:
        self.store = store
        self.wait = wait
        self.first_wait = first_wait
        self.patience = patience
        self._last: Reachability | None = None
        self._task: asyncio.Task[Any] | None = None
        self._started = 0.0

    async def check(self) -> Reachability:
        """Answers within ``wait`` seconds (plus the loop's own latency), whatever the
        database does."""
        if self._task is None or self._task.done():
            self._started = time.monotonic()
            self._task = spawn(self._probe(), "database-probe")
        wait = self.wait if self._last is not None else self.first_wait
        done, _ = await asyncio.wait({self._task}, timeout=wait)
        last = self._last
        if last is None or not (done or time.monotonic() - self._started < self.patience):
            return UNREACHABLE
        if last.reachable and last.version is not None and \
                (self.store.committed_version or 0) > last.version:
            # a write of this node committed after that probe read: that one is newer
            return Reachability(True, self.store.committed_version)
        return last

    async def _probe(self) -> None:
        try:
            # reads the table every write locks first: a hang there is what /status must show
            version = await self.store.config_version()
        except Exception:
            self._last = UNREACHABLE
        else:
            self._last = Reachability(True, version)
