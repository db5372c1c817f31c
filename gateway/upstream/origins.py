"""Keep-alive pools of raw upstream connections, one per (TLS profile, host, port, SNI).

A connection goes back to its pool only after a complete exchange (the whole request sent,
the whole response read, both sides willing to keep it); it is never shared between TLS
profiles, so never presented under another client certificate. An idle connection the
upstream closes leaves its pool at once; one idle longer than ``idle_timeout`` or used for
``max_requests`` requests is closed (Kong's ``upstream_keepalive_*``). When a snapshot stops
using a profile, its pools close their idle connections and stop taking any back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple

from gateway.tls.client import ClientProfile
from gateway.upstream.origin import HEAD_MAX, OriginConnection, dial


class OriginKey(NamedTuple):
    """A tuple: looked up once per request, and a tuple hashes in C (a dataclass's hash is
    a Python call)."""

    profile: ClientProfile | None  # None: plain HTTP
    host: str
    port: int
    sni: str | None


class OriginPool:
    __slots__ = ("idle", "key", "retired")

    def __init__(self, key: OriginKey) -> None:
        self.key = key
        self.idle: deque[OriginConnection] = deque()
        self.retired = False


class Origins:
    def __init__(self, context: Callable[[ClientProfile], ssl.SSLContext], *,
                 idle_timeout: float = 60.0, max_requests: int = 10000,
                 pool_size: int = 512, head_max: int = HEAD_MAX) -> None:
        self._context = context
        self.head_max = head_max  # nginx's proxy_buffer_size
        self.idle_timeout = idle_timeout
        self.max_requests = max_requests
        self.pool_size = pool_size
        self._pools: dict[OriginKey, OriginPool] = {}
        self._of: dict[OriginConnection, OriginPool] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def acquire(self, key: OriginKey, timeout: float, fresh: bool = False
                      ) -> tuple[OriginConnection, bool]:
        """``(connection, reused)``: an idle pooled one (most recent first) or a new one
        (always, when ``fresh``)."""
        conn = None if fresh else self.idle(key)
        if conn is not None:
            return conn, True
        return await self.dial(key, timeout), False

    def idle(self, key: OriginKey, now: float | None = None) -> OriginConnection | None:
        """A pooled connection still open and not idle for too long (most recent first);
        ``now``: the caller's clock reading, if it has a recent one."""
        pool = self._pools.get(key)
        if pool is None:
            return None
        if now is None:
            now = time.monotonic()
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            self._of.pop(conn, None)
            conn.close()
        return None

    async def dial(self, key: OriginKey, timeout: float) -> OriginConnection:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = OriginPool(key)
        context = self._context(key.profile) if key.profile is not None else None
        conn = await dial(self, key.host, key.port, context, key.sni, timeout, self.head_max)
        self._of[conn] = pool
        return conn

    def release(self, conn: OriginConnection, reusable: bool) -> None:
        pool = self._of.get(conn)
        if pool is None or not reusable or not conn.keep_alive or conn.closed or \
                pool.retired or conn.requests >= self.max_requests or \
                len(pool.idle) >= self.pool_size:
            self._of.pop(conn, None)
            conn.close()
            return
        if conn.reading_paused:
            # the client's back-pressure stopped the read as the response ended (its last
            # read filled the client's buffer): an idle connection reads again, to see the
            # upstream close it, and the next exchange's answer (a paused read never times
            # out, so that exchange would wait for ever)
            conn.resume_reading()
        # idle since its last read: the response's end (no clock read of its own)
        conn.idle_since = conn.last_read
        pool.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_timeout,
                                                                  self._sweep)

    def lost(self, conn: OriginConnection) -> None:
        """The connection closed (the upstream's idle timeout, a reset): out of its pool."""
        pool = self._of.pop(conn, None)
        if pool is not None:
            with contextlib.suppress(ValueError):  # in use: the exchange sees the failure
                pool.idle.remove(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        left = False
        for pool in self._pools.values():
            for conn in [c for c in pool.idle if now - c.idle_since >= self.idle_timeout]:
                pool.idle.remove(conn)
                self._of.pop(conn, None)
                conn.close()
            left = left or bool(pool.idle)
        if left:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_timeout,
                                                                  self._sweep)

    def retain(self, profiles: Iterable[ClientProfile | None]) -> None:
        """After a swap: pools of profiles no longer used close their idle connections;
        connections still in use finish their exchange, then close."""
        wanted = set(profiles) | {None}
        for key in [k for k in self._pools if k.profile not in wanted]:
            pool = self._pools.pop(key)
            pool.retired = True
            while pool.idle:
                conn = pool.idle.pop()
                self._of.pop(conn, None)
                conn.close()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.retired = True
        for conn in list(self._of):
            conn.close()
        self._of.clear()
        self._pools.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    @property
    def idle_count(self) -> int:
        return sum(len(p.idle) for p in self._pools.values())
