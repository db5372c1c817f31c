"""Revocation checks for mtls-auth, off the request's hot path (kong.md §6.3 step 5).

Order: a CRL uploaded for the issuing CA (``/ca_certificates/{id}/crl``) that lists the leaf
revokes it at once; otherwise OCSP (the leaf's AIA responders), then CRLs from its
distribution points. An answer is cached until its nextUpdate or ``cert_cache_ttl``,
whichever comes first; failures are not cached. One fetch per certificate at a time: a
fetch runs as its own task and every request for that certificate waits for the same one,
so a client that hangs up does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.plugins.mtls_auth import crl as crls
from gateway.plugins.mtls_auth import ocsp
from gateway.tasks import spawn

log = logging.getLogger("ramparts.plugins.mtls-auth")

GOOD, REVOKED, UNKNOWN = "good", "revoked", "unknown"
MAX_BODY = 16 * 1024 * 1024
MAX_CACHED = 100_000


@dataclass(frozen=True, slots=True)
class Options:
    timeout: float      # seconds (Kong's http_timeout is in ms)
    ttl: float          # seconds (cert_cache_ttl)
    http_proxy: str | None
    https_proxy: str | None
    ssl_verify: bool

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Options:
        def proxy(scheme: str) -> str | None:
            host, port = config.get(f"{scheme}_proxy_host"), config.get(f"{scheme}_proxy_port")
            return f"http://{host}:{port}" if host and port else None

        return cls(timeout=float(config.get("http_timeout") or 30000) / 1000,
                   ttl=float(config.get("cert_cache_ttl") or 60000),
                   http_proxy=proxy("http"), https_proxy=proxy("https"),
                   ssl_verify=config.get("ssl_verify") is not False)


class Revocation:
    """Per process: the answers cache and the fetches in flight, keyed by (leaf, issuer)."""

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._inflight: dict[bytes, asyncio.Task[tuple[str, float]]] = {}

    @staticmethod
    def key(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
        return key_of(leaf, issuer)

    def cached(self, key: bytes) -> str | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[1] <= time.monotonic():
            del self._cache[key]
            return None
        return hit[0]

    async def status(self, key: bytes, leaf: x509.Certificate, issuer: x509.Certificate,
                     options: Options) -> str:
        task = self._inflight.get(key)
        if task is None:
            task = spawn(lookup(leaf, issuer, options), "revocation-check")
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        status, _ = await asyncio.shield(task)
        return status

    def _settled(self, key: bytes, task: asyncio.Task[tuple[str, float]]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        status, until = task.result()
        if status == UNKNOWN:
            return  # network failures are retried by the next request
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (status, until)


CHECKER = Revocation()


def key_of(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    return leaf.fingerprint(hashes.SHA256()) + issuer.fingerprint(hashes.SHA256())


def _until(next_update: dt.datetime | None, ttl: float) -> float:
    deadline = time.monotonic() + ttl
    if next_update is not None:
        left = (next_update - dt.datetime.now(dt.UTC)).total_seconds()
        deadline = min(deadline, time.monotonic() + max(left, 0))
    return deadline


async def lookup(leaf: x509.Certificate, issuer: x509.Certificate, options: Options
                 ) -> tuple[str, float]:
    """OCSP first, then the CRL distribution points; (status, cache deadline)."""
    timeout = aiohttp.ClientTimeout(total=options.timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in ocsp.responders(leaf):
            try:
                body = await _fetch(session, url, options, ocsp.request_der(leaf, issuer))
                status, nxt = ocsp.verdict(body, leaf, issuer)
                return status, _until(nxt, options.ttl)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.info("[mtls-auth] OCSP %s: %s", url, exc or type(exc).__name__)
        for url in crls.distribution_points(leaf):
            try:
                crl = crls.parse(await _fetch(session, url, options, None))
                if not crls.signed_by(crl, issuer) or not crl.fresh():
                    raise ValueError("CRL not signed by the issuer, or not fresh")
                status = REVOKED if crl.revoked(leaf.serial_number) else GOOD
                return status, _until(crl.next_update, options.ttl)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.info("[mtls-auth] CRL %s: %s", url, exc or type(exc).__name__)
    return UNKNOWN, 0.0


async def _fetch(session: aiohttp.ClientSession, url: str, options: Options,
                 ocsp_request: bytes | None) -> bytes:
    proxy = options.https_proxy if url.startswith("https:") else options.http_proxy
    ssl = options.ssl_verify  # True: verify with the default CAs
    if ocsp_request is not None:
        call = session.post(url, data=ocsp_request, proxy=proxy, ssl=ssl,
                            headers={"Content-Type": "application/ocsp-request"})
    else:
        call = session.get(url, proxy=proxy, ssl=ssl)
    async with call as response:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        body = await response.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ValueError("answer too large")
        return body
