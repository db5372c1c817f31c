"""Active health checks: one task per upstream that has probe intervals configured.

Healthy targets are probed every ``healthy.interval`` seconds, unhealthy ones every
``unhealthy.interval`` (0 disables that half). HTTP(S) probes GET ``http_path`` with the
configured headers; HTTPS probes use the same TLS profile as the upstream's traffic (client
certificate included), ``https_sni`` and ``https_verify_certificate``. TCP probes connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp

from gateway.snapshot import Snapshot
from gateway.tasks import spawn
from gateway.upstream.balancer import Balancer, Balancers, Outcome, Peer
from gateway.upstream.pools import Pools
from gateway.upstream.target import sni_for, url_host

log = logging.getLogger("ramparts.health")


class ActiveChecks:
    def __init__(self, balancers: Balancers, pools: Pools) -> None:
        self.balancers = balancers
        self.pools = pools
        self._tasks: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self._snapshot: Snapshot | None = None

    def sync(self, snapshot: Snapshot) -> None:
        """On the loop, after a swap: start, restart or stop the per-upstream probe tasks."""
        self._snapshot = snapshot
        wanted: dict[str, Any] = {}
        for balancer in self.balancers.all():
            active = balancer.upstream.healthchecks.active
            if (active.healthy.interval or active.unhealthy.interval) and balancer.peers:
                wanted[balancer.upstream.id] = (balancer.upstream, balancer.peers,
                                                snapshot.probe_profiles.get(
                                                    balancer.upstream.id))
        for uid in [u for u in self._tasks if self._tasks[u][0] != wanted.get(u)]:
            self._tasks.pop(uid)[1].cancel()
        for uid, key in wanted.items():
            if uid not in self._tasks:
                self._tasks[uid] = (key, spawn(self._run(uid), f"health-{uid}"))

    def stop(self) -> None:
        for _, task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _run(self, upstream_id: str) -> None:
        due: dict[str, float] = {}
        while True:
            balancer = self.balancers.get(upstream_id)
            if balancer is None:
                return
            active = balancer.upstream.healthchecks.active
            now = time.monotonic()
            probes = []
            for peer in balancer.peers:
                interval = active.healthy.interval if balancer.health[peer.address].healthy \
                    else active.unhealthy.interval
                if interval and due.get(peer.address, 0.0) <= now:
                    due[peer.address] = now + interval
                    probes.append(peer)
            limit = asyncio.Semaphore(max(1, active.concurrency))

            async def one(peer: Peer, b: Balancer = balancer,
                          gate: asyncio.Semaphore = limit) -> None:
                async with gate:
                    b.active(peer.address, await self._probe(b, peer))

            if probes:
                await asyncio.gather(*(one(p) for p in probes))
            pending = [d for d in due.values() if d > time.monotonic()]
            await asyncio.sleep(max(0.05, min(pending, default=now + 1) - time.monotonic()))

    async def _probe(self, balancer: Balancer, peer: Peer) -> Outcome:
        active = balancer.upstream.healthchecks.active
        timeout = float(active.timeout) or 1.0
        try:
            if active.type == "tcp" or active.type.startswith("grpc"):
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(peer.host, peer.port), timeout)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return "success"
            return await self._http_probe(balancer, peer, timeout)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return "timeout"
        except (OSError, aiohttp.ClientError) as exc:
            log.debug("probe of %s failed: %s", peer.address, exc)
            return "tcp_failure"

    async def _http_probe(self, balancer: Balancer, peer: Peer, timeout: float) -> Outcome:
        active = balancer.upstream.healthchecks.active
        https = active.type == "https"
        profile = self._snapshot.probe_profiles.get(balancer.upstream.id) \
            if https and self._snapshot else None
        session = self.pools.session(profile if https else None)
        url = f"{'https' if https else 'http'}://{url_host(peer.host)}:{peer.port}" \
              f"{active.http_path}"
        headers = {k: ", ".join(v) for k, v in (active.headers or {}).items()}
        sni = (active.https_sni or sni_for(peer.host)) if https else None
        async with session.get(url, headers=headers, allow_redirects=False,
                               server_hostname=sni,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.read()
            if resp.status in active.healthy.http_statuses:
                return "success"
            if resp.status in active.unhealthy.http_statuses:
                return "http_failure"
            return "ignored"  # listed in neither: Kong counts it as nothing
