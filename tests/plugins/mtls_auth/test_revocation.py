"""The revocation runtime: one fetch per certificate at a time, answers cached, failures not
(answers from ``openssl ocsp`` behind a local HTTP server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography import x509

from gateway.plugins.mtls_auth.revocation import GOOD, REVOKED, UNKNOWN, Options, Revocation
from tests.e2e.proc import free_port
from tests.e2e.revocation import Authority, serve
from tests.pki import openssl

OPTIONS = Options(timeout=5, ttl=60, http_proxy=None, https_proxy=None, ssl_verify=True)


def load(d: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((d / f"{name}.crt").read_bytes())


async def test_single_flight_cache_and_uncached_failures(tmp_path: Path) -> None:
    openssl(tmp_path, "req", "-newkey", "rsa:2048", "-nodes", "-x509", "-days", "30",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=Unit CA")
    authority = Authority(tmp_path)
    port, dead = free_port(), free_port()
    authority.issue("good", ocsp=f"http://127.0.0.1:{port}/ocsp")
    authority.issue("revoked", ocsp=f"http://127.0.0.1:{port}/ocsp", revoked=True)
    authority.issue("lost", ocsp=f"http://127.0.0.1:{dead}/ocsp")
    ca = load(tmp_path, "ca")
    checker = Revocation()
    with serve(authority, port):
        good = load(tmp_path, "good")
        key = checker.key(good, ca)
        answers = await asyncio.gather(*(checker.status(key, good, ca, OPTIONS)
                                         for _ in range(8)))
        assert answers == [GOOD] * 8
        assert authority.ocsp_requests == 1          # eight requests, one fetch
        assert checker.cached(key) == GOOD
        revoked = load(tmp_path, "revoked")
        assert await checker.status(checker.key(revoked, ca), revoked, ca, OPTIONS) == REVOKED
        lost = load(tmp_path, "lost")
        lost_key = checker.key(lost, ca)
        assert await checker.status(lost_key, lost, ca, OPTIONS) == UNKNOWN
        assert checker.cached(lost_key) is None      # the next request tries again
