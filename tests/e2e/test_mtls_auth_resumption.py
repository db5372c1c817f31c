"""Issue 11: "Session resumption is off on those connections [the SNIs where mtls-auth
applies] so the full chain is seen on every connection". With a ``tls`` policy that allows
TLS 1.2, ``openssl s_client -sess_out`` then ``-sess_in`` shows ``Reused`` on a plain SNI
and ``New`` on an mTLS SNI, over TLS 1.2 (session IDs) and TLS 1.3 (tickets)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gateway import Node, mtls_auth_on_sni, node, upstream
from tests.pki import Pki

pytestmark = pytest.mark.e2e

GET = b"GET /__health HTTP/1.0\r\n\r\n"  # s_client reads on until the close: tickets arrive


def connect(port: int, servername: str, version: str, *args: str) -> str:
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                          "-servername", servername, version, "-ign_eof", *args],
                         input=GET, capture_output=True, timeout=15)
    return out.stdout.decode(errors="replace")


def resumed(port: int, servername: str, version: str, work: Path) -> bool:
    """A first connection saves its session, a second offers it: was it resumed? (TLS 1.3
    without a ticket leaves s_client nothing to save, hence nothing to offer.)"""
    session = work / f"{servername}{version}.pem"
    session.unlink(missing_ok=True)
    first = connect(port, servername, version, "-sess_out", str(session))
    assert "HTTP/1.1 200" in first, first[-2000:]
    if not session.exists():
        assert version == "-tls1_3" and "Post-Handshake New Session Ticket" not in first
        return False
    second = connect(port, servername, version, "-sess_in", str(session))
    assert "HTTP/1.1 200" in second, second[-2000:]
    assert ("\nReused, " in second) != ("\nNew, " in second), second[-2000:]
    return "\nReused, " in second


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("mtls-resumption")
    with node(work, f"sqlite:///{work}/r.db", tls={"min_version": "TLS12"}) as running, \
            upstream("echo") as up:
        mtls_auth_on_sni(running, pki.read("s003/ca.crt"), up, "mtls.test", "/m")
        yield running


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_a_plain_sni_resumes(gw: Node, version: str, tmp_path: Path) -> None:
    assert resumed(gw.https_port, "plain.test", version, tmp_path)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_an_mtls_sni_never_resumes(gw: Node, version: str, tmp_path: Path) -> None:
    assert not resumed(gw.https_port, "mtls.test", version, tmp_path)
