"""Load balancing over an upstream's targets, with Kong's health model.

``Balancer`` is runtime state for one upstream (pick counters, in-flight counts, latency,
health of each target); the upstream's configuration comes from the snapshot. ``Balancers``
keeps one per upstream id across reloads and carries a target's health over as long as the
target stays.

Health (lua-resty-healthcheck's model): each target has success and failure counters;
``unhealthy.*`` thresholds turn a healthy target unhealthy, ``healthy.successes`` turns an
unhealthy one healthy again; a success resets the failure counters and a failure the success
counter. Passive counts come from real traffic, active ones from probes (health.py). With
every threshold at 0 health checks are off and targets are always eligible.
"""

from __future__ import annotations

import bisect
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.schema.entities.upstreams import TargetEntity, UpstreamEntity
from gateway.schema.typedefs import HostError, normalize_ip

Outcome = Literal["success", "http_failure", "tcp_failure", "timeout", "ignored"]


@dataclass(frozen=True, slots=True)
class Peer:
    target_id: str
    address: str  # as stored: host:port
    host: str
    port: int
    weight: int


def peer_of(target: TargetEntity) -> Peer:
    try:
        parsed = normalize_ip(target.target)
        host, port = parsed.host, parsed.port or 8000
    except HostError:
        host, _, port_text = target.target.rpartition(":")
        port = int(port_text)
    return Peer(target.id, target.target, host, port, target.weight)


@dataclass(slots=True)
class Health:
    healthy: bool = True
    successes: int = 0
    http_failures: int = 0
    tcp_failures: int = 0
    timeouts: int = 0

    def reset(self, healthy: bool) -> None:
        self.healthy = healthy
        self.successes = self.http_failures = self.tcp_failures = self.timeouts = 0


def _checks_on(upstream: UpstreamEntity) -> bool:
    hc = upstream.healthchecks
    active, passive = hc.active, hc.passive
    counters = (active.healthy.successes, active.unhealthy.http_failures,
                active.unhealthy.tcp_failures, active.unhealthy.timeouts,
                passive.healthy.successes, passive.unhealthy.http_failures,
                passive.unhealthy.tcp_failures, passive.unhealthy.timeouts)
    intervals = (active.healthy.interval, active.unhealthy.interval)
    return any(counters) or any(intervals)


@dataclass
class Balancer:
    upstream: UpstreamEntity
    peers: tuple[Peer, ...]
    health: dict[str, Health] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    _current: dict[str, int] = field(default_factory=dict)  # smooth weighted round-robin
    _ring: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for peer in self.peers:
            self.health.setdefault(peer.address, Health())
        self._build_ring()

    @property
    def checks_on(self) -> bool:
        return _checks_on(self.upstream)

    # ------------------------------------------------------------------ selection
    def eligible(self) -> list[Peer]:
        return [p for p in self.peers
                if p.weight > 0 and (not self.checks_on or self.health[p.address].healthy)]

    def available(self) -> bool:
        """Kong's ``threshold``: the upstream is down when the healthy weight drops below
        ``threshold`` percent of the total."""
        total = sum(p.weight for p in self.peers if p.weight > 0)
        if total == 0:
            return False
        healthy = sum(p.weight for p in self.eligible())
        return healthy > 0 and healthy * 100 >= self.upstream.healthchecks.threshold * total

    def pick(self, hash_key: str | None = None, exclude: Iterable[str] = ()) -> Peer | None:
        if not self.available():
            return None
        skip = set(exclude)
        candidates = [p for p in self.eligible() if p.address not in skip] or self.eligible()
        algorithm = self.upstream.algorithm
        if algorithm == "consistent-hashing" and hash_key is not None:
            return self._by_hash(hash_key, candidates)
        if algorithm == "least-connections":
            return min(candidates,
                       key=lambda p: (self.in_flight.get(p.address, 0) + 1) / p.weight)
        if algorithm == "latency":
            return min(candidates, key=lambda p: self.latency.get(p.address, 0.0)
                       * (self.in_flight.get(p.address, 0) + 1))
        return self._round_robin(candidates)

    def _round_robin(self, candidates: list[Peer]) -> Peer:
        """nginx's smooth weighted round-robin: exact proportions, evenly interleaved."""
        total = 0
        best: Peer | None = None
        for peer in candidates:
            current = self._current.get(peer.address, 0) + peer.weight
            self._current[peer.address] = current
            total += peer.weight
            if best is None or current > self._current[best.address]:
                best = peer
        assert best is not None
        self._current[best.address] -= total
        return best

    def _build_ring(self) -> None:
        active = [p for p in self.peers if p.weight > 0]
        total = sum(p.weight for p in active)
        ring: list[tuple[int, str]] = []
        for peer in active:
            points = max(1, self.upstream.slots * peer.weight // max(total, 1))
            ring.extend((zlib.crc32(f"{peer.address}#{i}".encode()), peer.address)
                        for i in range(points))
        ring.sort()
        self._ring = ring

    def _by_hash(self, key: str, candidates: list[Peer]) -> Peer:
        allowed = {p.address: p for p in candidates}
        if not self._ring:
            return candidates[0]
        start = bisect.bisect(self._ring, (zlib.crc32(key.encode()), ""))
        for i in range(len(self._ring)):
            address = self._ring[(start + i) % len(self._ring)][1]
            if address in allowed:
                return allowed[address]
        return candidates[0]

    # ------------------------------------------------------------------ accounting
    def started(self, peer: Peer) -> float:
        self.in_flight[peer.address] = self.in_flight.get(peer.address, 0) + 1
        return time.monotonic()

    def finished(self, peer: Peer, since: float, outcome: Outcome, status: int | None
                 ) -> None:
        self.in_flight[peer.address] = max(0, self.in_flight.get(peer.address, 1) - 1)
        elapsed = time.monotonic() - since
        previous = self.latency.get(peer.address)
        self.latency[peer.address] = elapsed if previous is None else \
            previous * 0.8 + elapsed * 0.2
        self.passive(peer.address, outcome, status)

    def passive(self, address: str, outcome: Outcome, status: int | None) -> None:
        passive = self.upstream.healthchecks.passive
        if outcome == "success" and status is not None:
            if status in passive.unhealthy.http_statuses:
                outcome = "http_failure"
            elif status not in passive.healthy.http_statuses:
                return
        self._count(address, outcome, passive.healthy.successes,
                    passive.unhealthy.http_failures, passive.unhealthy.tcp_failures,
                    passive.unhealthy.timeouts)

    def active(self, address: str, outcome: Outcome) -> None:
        active = self.upstream.healthchecks.active
        self._count(address, outcome, active.healthy.successes,
                    active.unhealthy.http_failures, active.unhealthy.tcp_failures,
                    active.unhealthy.timeouts)

    def _count(self, address: str, outcome: Outcome, successes: int, http_failures: int,
               tcp_failures: int, timeouts: int) -> None:
        health = self.health.get(address)
        if health is None or outcome == "ignored":
            return
        if outcome == "success":
            health.http_failures = health.tcp_failures = health.timeouts = 0
            health.successes += 1
            if not health.healthy and successes and health.successes >= successes:
                health.reset(True)
            return
        health.successes = 0
        limit = {"http_failure": http_failures, "tcp_failure": tcp_failures,
                 "timeout": timeouts}[outcome]
        counter = {"http_failure": "http_failures", "tcp_failure": "tcp_failures",
                   "timeout": "timeouts"}[outcome]
        setattr(health, counter, getattr(health, counter) + 1)
        if health.healthy and limit and getattr(health, counter) >= limit:
            health.reset(False)

    def set_health(self, address: str, healthy: bool) -> bool:
        health = self.health.get(address)
        if health is None:
            return False
        health.reset(healthy)
        return True

    def status_of(self, address: str) -> str:
        if not self.checks_on:
            return "HEALTHCHECKS_OFF"
        return "HEALTHY" if self.health[address].healthy else "UNHEALTHY"


class Balancers:
    """One balancer per upstream id, kept across snapshots (runtime, per process)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Balancer] = {}
        self._marks_applied: dict[str, int] = {}

    def update(self, upstreams: Iterable[UpstreamEntity],
               targets_of: Mapping[str, tuple[TargetEntity, ...]],
               marks: Mapping[str, tuple[bool, int]] | None = None) -> None:
        """On the loop, after a swap: new config in, health of surviving targets kept, manual
        health marks newer than the last applied one applied (on every node)."""
        fresh: dict[str, Balancer] = {}
        for upstream in upstreams:
            peers = tuple(peer_of(t) for t in targets_of.get(upstream.id, ()))
            old = self._by_id.get(upstream.id)
            if old is not None and old.upstream == upstream and old.peers == peers:
                fresh[upstream.id] = old
                continue
            balancer = Balancer(upstream, peers)
            if old is not None:
                for address, health in old.health.items():
                    if address in balancer.health:
                        balancer.health[address] = health
            fresh[upstream.id] = balancer
        self._by_id = fresh
        by_target = {p.target_id: (b, p) for b in fresh.values() for p in b.peers}
        for target_id, (healthy, stamp) in (marks or {}).items():
            if stamp > self._marks_applied.get(target_id, -1) and target_id in by_target:
                balancer, peer = by_target[target_id]
                balancer.set_health(peer.address, healthy)
                self._marks_applied[target_id] = stamp

    def get(self, upstream_id: str) -> Balancer | None:
        return self._by_id.get(upstream_id)

    def all(self) -> list[Balancer]:
        return list(self._by_id.values())
