"""Seed 001 as written: its openssl commands, its KrakenD file, its curl lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.proc import free_port, ramparts
from tests.pki import Pki

pytestmark = pytest.mark.e2e


def curl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=30)


def test_seed_001_flow(tmp_path: Path, pki: Pki) -> None:
    for name in ("rootCA.pem", "server.crt", "server.key", "client.crt", "client.key"):
        shutil.copy(pki.dir / "s001" / name, tmp_path / name)
    shutil.copy(pki.dir / "s003" / "client.crt", tmp_path / "stranger.crt")
    shutil.copy(pki.dir / "s003" / "client.key", tmp_path / "stranger.key")
    port = free_port()
    krakend = {
        "version": 3,
        "$schema": "https://www.krakend.io/schema/v2.3/krakend.json",
        "port": port,
        "tls": {
            "public_key": "./server.crt",
            "private_key": "./server.key",
            "enable_mtls": True,
            "ca_certs": ["./rootCA.pem"],
            "disable_system_ca_pool": True,
        },
    }
    settings = {**krakend, "listen_ip": "127.0.0.1", "database": f"sqlite:///{tmp_path}/r.db"}
    with ramparts(tmp_path, settings):
        url = f"https://localhost:{port}/__health"
        ok = curl("--cacert", "rootCA.pem", "--key", "client.key", "--cert", "client.crt", url,
                  cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        body = json.loads(ok.stdout)
        assert body["agents"] == {} and body["status"] == "ok" and " +0000 UTC" in body["now"]

        # without a certificate: a clear HTTP error, never an empty reply or a reset
        anonymous = curl("-k", "-w", "\n%{http_code}", url, cwd=tmp_path)
        assert anonymous.returncode == 0, anonymous.stderr
        text, _, code = anonymous.stdout.rpartition("\n")
        assert code == "401"
        assert json.loads(text) == {"message": "No required TLS certificate was sent"}

        # a certificate from a CA the gateway does not trust
        stranger = curl("-k", "-w", "\n%{http_code}", "--key", "stranger.key", "--cert",
                        "stranger.crt", url, cwd=tmp_path)
        assert stranger.returncode == 0, stranger.stderr
        text, _, code = stranger.stdout.rpartition("\n")
        assert code == "401"
        assert json.loads(text) == {"message": "TLS certificate failed verification"}


def test_mtls_covers_plain_listeners_too(tmp_path: Path, pki: Pki) -> None:
    """With enable_mtls every endpoint needs a client certificate: a plain-HTTP listener in
    proxy_listen cannot be a way around it."""
    plain, tls = free_port(), free_port()
    settings = {"database": f"sqlite:///{tmp_path}/r.db",
                "proxy_listen": f"127.0.0.1:{plain}, 127.0.0.1:{tls} ssl",
                "tls": {"enable_mtls": True, "ca_certs": [pki.path("s001/rootCA.pem")],
                        "disable_system_ca_pool": True}}
    with ramparts(tmp_path, settings):
        out = curl("-w", "\n%{http_code}", f"http://127.0.0.1:{plain}/__health",
                   cwd=tmp_path)
        text, _, code = out.stdout.rpartition("\n")
        assert code == "401"
        assert json.loads(text) == {"message": "No required TLS certificate was sent"}
