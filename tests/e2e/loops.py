"""A background request loop for e2e tests: one URL, over and over on its own connection,
bounded in count and time, recording when each request started, how long it took and what it
answered (or the error that ended it)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class RequestLoop:
    url: str
    pause: float = 0.0  # seconds between requests
    max_requests: int = 10_000
    max_seconds: float = 120.0
    results: list[tuple[float, float, int]] = field(default_factory=list)  # start, took, status
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def times(self) -> list[float]:
        return [took for _, took, _ in self.results]

    @property
    def ok(self) -> int:
        return sum(1 for _, _, status in self.results if status == 200)

    @property
    def statuses(self) -> set[int]:
        return {status for _, _, status in self.results}

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set() and time.monotonic() < deadline \
                    and len(self.results) < self.max_requests:
                started = time.monotonic()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                else:
                    self.results.append((started, time.monotonic() - started, status))
                if self.pause:
                    time.sleep(self.pause)
