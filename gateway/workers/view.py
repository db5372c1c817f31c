"""The node as ``GET /status`` shows it, from the status board's entries (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.stats import ServerStats
from gateway.workers.board import ROLE_WORKER, Entry


def server_status(entries: Iterable[Entry]) -> dict[str, int]:
    """Kong's ``server`` counters for the whole node: the sum over its processes (the Admin
    API's connections count too, as nginx's counters cover every server block)."""
    total = ServerStats()
    for e in entries:
        total.connections_accepted += e.connections_accepted
        total.connections_active += e.connections_active
        total.connections_handled += e.connections_handled
        total.requests_active += e.requests_active
        total.total_requests += e.total_requests
        total.tls_handshakes_failed += e.tls_handshakes_failed
    return total.as_status()


def configuration_status(entries: Iterable[Entry]) -> dict[str, Any]:
    """The version the node serves: the lowest any worker serves (a change is live on the
    node once every worker applied it), applied when the last of them swapped it in; and the
    first worker's build error, if one cannot build the stored version."""
    workers = [e for e in entries if e.role == ROLE_WORKER]
    if not workers:
        return {}
    lowest = min(e.applied_version for e in workers)
    out: dict[str, Any] = {"applied_configuration_version": lowest if lowest >= 0 else None}
    times = [e.applied_at for e in workers if e.applied_at]
    if lowest >= 0 and times:
        out["configuration_applied_at"] = round(max(times), 3)
    failing = [e.error for e in workers if e.error]
    if failing:
        out["configuration_error"] = failing[0]
    return out


def worker_pids(entries: Iterable[Entry]) -> list[int]:
    return sorted(e.pid for e in entries if e.role == ROLE_WORKER)
