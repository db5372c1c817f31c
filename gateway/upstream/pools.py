"""Upstream connection pools: one aiohttp session per TLS profile.

A pool key says everything that makes a connection unusable for another request: plain or
TLS, and for TLS the whole profile (verification, depth, trusted CAs, client certificate,
versions). Services with equal keys share a pool; a connection is never reused with another
client certificate because that would be another key. Runtime state: lives outside the
snapshot, created on first use, closed with the process.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True, slots=True)
class TLSProfile:
    """How the gateway speaks TLS to an upstream. Filled from the service, the upstream entity
    and ``client_tls`` (the fields the next iteration adds go here)."""

    verify: bool = True
    ca_digest: str | None = None  # None: the system trust store


PoolKey = TLSProfile | None  # None: plain HTTP


def client_context(profile: TLSProfile) -> ssl.SSLContext:
    if profile.verify:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Pools:
    """Sessions by pool key; keep-alive connections are reused per (host, port, SNI)."""

    def __init__(self, keepalive: float = 60.0) -> None:
        self.keepalive = keepalive
        self._sessions: dict[PoolKey, aiohttp.ClientSession] = {}

    def session(self, key: PoolKey) -> aiohttp.ClientSession:
        session = self._sessions.get(key)
        if session is None or session.closed:
            tls: ssl.SSLContext | bool = client_context(key) if key is not None else False
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

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
