"""Upstream TLS contexts and pools: raw keep-alive pools for proxied traffic (``origins``),
and one aiohttp session per pool key for active health probes.

The key is ``None`` for plain HTTP, else the whole ``ClientProfile`` (verification, depth,
trusted CAs, client certificate, versions): services with equal profiles share a pool, and a
connection is never reused under another profile, so never with another client certificate.
When a snapshot stops using a profile its pool drains (in-flight requests finish) and closes.
Runtime state: outside the snapshot, per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterable

import aiohttp

from gateway.tasks import spawn
from gateway.tls.client import ClientProfile, client_context
from gateway.upstream.origin import HEAD_MAX
from gateway.upstream.origins import Origins

PoolKey = ClientProfile | None


class Pools:
    def __init__(self, keepalive: float = 60.0, drain: float = 65.0,
                 head_max: int = HEAD_MAX) -> None:
        self.keepalive = keepalive
        self.drain = drain
        self._sessions: dict[PoolKey, aiohttp.ClientSession] = {}
        self._contexts: dict[ClientProfile, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        # drained sessions waiting to close, with the timer that will look again
        self._retiring: dict[aiohttp.ClientSession, asyncio.TimerHandle] = {}
        self.origins = Origins(self.context, idle_timeout=keepalive, head_max=head_max)

    def context(self, profile: ClientProfile) -> ssl.SSLContext:
        """The client context of a profile (built at snapshot time; here if it was not)."""
        return self._contexts.get(profile) or self._context(profile)

    def prepare(self, profiles: Iterable[ClientProfile]) -> int:
        """Off the event loop (snapshot build): client contexts for new profiles, so loading
        CA stores and client certificates never blocks a request. Returns how many."""
        built = 0
        for profile in set(profiles):
            if profile not in self._contexts:
                ctx = client_context(profile)
                with self._lock:
                    self._contexts[profile] = ctx
                built += 1
        return built

    def session(self, key: PoolKey) -> aiohttp.ClientSession:
        session = self._sessions.get(key)
        if session is None or session.closed:
            tls: ssl.SSLContext | bool = False
            if key is not None:
                tls = self.context(key)
            connector = aiohttp.TCPConnector(limit=0, ssl=tls, keepalive_timeout=self.keepalive,
                                             ttl_dns_cache=10, enable_cleanup_closed=True)
            session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                            skip_auto_headers=("User-Agent", "Accept-Encoding",
                                                               "Accept", "Content-Type"),
                                            cookie_jar=aiohttp.DummyCookieJar(),
                                            timeout=aiohttp.ClientTimeout(total=None))
            # aiohttp silently re-sends idempotent requests once when a connection closes;
            # retries are the service's `retries`, counted by the proxy (tests check the count)
            session._retry_connection = False
            self._sessions[key] = session
        return session

    def _context(self, profile: ClientProfile) -> ssl.SSLContext:
        ctx = client_context(profile)
        with self._lock:
            self._contexts[profile] = ctx
        return ctx

    def retain(self, keys: Iterable[PoolKey]) -> None:
        """On the loop, after a swap: pools the new snapshot no longer uses drain and close."""
        wanted = set(keys) | {None}
        loop = asyncio.get_running_loop()
        with self._lock:  # contexts hold CA stores: never keep one nobody can use
            for profile in [p for p in self._contexts if p not in wanted]:
                del self._contexts[profile]
        for key in [k for k in self._sessions if k not in wanted]:
            self._retire(self._sessions.pop(key), loop)
        self.origins.retain(wanted)

    def _retire(self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        handle = loop.call_later(self.drain, self._close_when_idle, session, loop)
        self._retiring[session] = handle

    def _close_when_idle(self, session: aiohttp.ClientSession,
                         loop: asyncio.AbstractEventLoop) -> None:
        self._retiring.pop(session, None)
        connector = session.connector
        # closing a session cuts the connections still in use: a long download that
        # started on the old profile finishes first
        if connector is not None and getattr(connector, "_acquired", None):
            self._retire(session, loop)
            return
        spawn(session.close(), "close-drained-pool")

    async def close(self) -> None:
        self.origins.close()
        retiring = list(self._retiring.items())
        self._retiring.clear()
        for session, handle in retiring:
            handle.cancel()
            with contextlib.suppress(Exception):
                await session.close()
        for session in self._sessions.values():
            with contextlib.suppress(Exception):
                await session.close()
        self._sessions.clear()

    @property
    def size(self) -> int:
        return len(self._sessions)
