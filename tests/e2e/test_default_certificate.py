"""The default certificate: generated once (RSA and ECDSA, like Kong), kept across restarts;
or the configured one."""

from __future__ import annotations

import hashlib
import stat
import subprocess
from pathlib import Path

import pytest

from tests.e2e.gateway import node, served_key_bits, served_subject
from tests.pki import Pki

pytestmark = pytest.mark.e2e


def fingerprint(port: int) -> str:
    hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                            "-noservername"], input=b"", capture_output=True, timeout=15)
    der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=hello.stdout,
                         capture_output=True, timeout=15).stdout
    return hashlib.sha256(der).hexdigest()


def test_generated_once_and_kept(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/r.db"
    with node(tmp_path, db) as gw:
        first = fingerprint(gw.https_port)
        assert served_subject(gw.https_port, None) == "CN=localhost"
        assert served_key_bits(gw.https_port, "localhost", "-sigalgs", "ECDSA+SHA256") == "256"
        assert served_key_bits(gw.https_port, "localhost", "-sigalgs",
                               "RSA-PSS+SHA256:RSA+SHA256") == "2048"
    ssl_dir = tmp_path / "prefix" / "ssl"
    keys = sorted(p.name for p in ssl_dir.glob("*.key"))
    assert keys == ["ramparts-default-ecdsa.key", "ramparts-default.key"]
    for key in ssl_dir.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with node(tmp_path, db) as gw:
        assert fingerprint(gw.https_port) == first  # reused, not regenerated


def test_configured_certificate_wins(tmp_path: Path, pki: Pki) -> None:
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db", ssl_cert=pki.path("s003/server.crt"),
              ssl_cert_key=pki.path("s003/server.key")) as gw:
        assert served_subject(gw.https_port, None) == "CN=kong-server"
        assert served_subject(gw.https_port, "anything.test") == "CN=kong-server"
    assert not (tmp_path / "prefix" / "ssl").exists()
