"""Connection and request counters of one process; the workers publish theirs on the status
board, which ``GET /status`` sums (``gateway/workers/board.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServerStats:
    """Plain counters: bumped from the event loop thread only, so no locking."""

    connections_accepted: int = 0
    connections_active: int = 0
    connections_handled: int = 0
    requests_active: int = 0
    total_requests: int = 0
    tls_handshakes_failed: int = 0  # refused with an alert, timed out or cut short

    def as_status(self) -> dict[str, int]:
        writing = min(self.requests_active, self.connections_active)
        return {
            "connections_accepted": self.connections_accepted,
            "connections_active": self.connections_active,
            "connections_handled": self.connections_handled,
            "connections_reading": 0,
            "connections_writing": writing,
            "connections_waiting": max(0, self.connections_active - writing),
            "total_requests": self.total_requests,
            "tls_handshakes_failed": self.tls_handshakes_failed,
        }
