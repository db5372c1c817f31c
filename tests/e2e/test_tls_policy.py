"""The KrakenD ``tls`` block as sslscan sees it (seed 000's defaults and its variants)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gateway import node

pytestmark = pytest.mark.e2e

TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
TLS12_DEFAULTS = {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                  "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES256-GCM-SHA384",
                  "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256"}


def sslscan(port: int) -> dict[str, Any]:
    out = subprocess.run(["sslscan", "--no-colour", "--sni-name=localhost",
                          f"127.0.0.1:{port}"], capture_output=True, text=True,
                         timeout=120).stdout
    return {
        "text": out,
        "enabled": re.findall(r"^(SSLv\S+|TLSv\S+)\s+enabled", out, re.M),
        "tls13": re.findall(r"^(?:Preferred|Accepted)\s+TLSv1\.3\s+\d+ bits\s+(\S+)", out,
                            re.M),
        "tls12": re.findall(r"^(?:Preferred|Accepted)\s+TLSv1\.2\s+\d+ bits\s+(\S+)", out,
                            re.M),
        "preferred13": re.findall(r"^Preferred\s+TLSv1\.3\s+\d+ bits\s+(\S+)", out, re.M),
        "groups": re.findall(r"^TLSv1\.[23]\s+\d+ bits\s+\S+ \(NIST (P-\d+)\)", out, re.M),
        "x25519": bool(re.search(r"^TLSv1\.[23]\s+\d+ bits\s+x25519", out, re.M)),
    }


def scan_with(tmp_path: Path, tls: dict[str, Any] | None) -> dict[str, Any]:
    settings: dict[str, Any] = {} if tls is None else {"tls": tls}
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db", **settings) as gw:
        return sslscan(gw.https_port)


def test_default_is_seed_000(tmp_path: Path) -> None:
    scan = scan_with(tmp_path, None)
    assert scan["enabled"] == ["TLSv1.3"], scan["text"]
    assert scan["tls13"] == TLS13 and scan["preferred13"] == ["TLS_AES_128_GCM_SHA256"]
    assert scan["groups"] == ["P-256", "P-384", "P-521"] and not scan["x25519"]
    text = scan["text"]
    assert "Session renegotiation not supported" in text
    assert "not vulnerable to heartbleed" in text and "vulnerable to heartbleed\n" not in \
        text.replace("not vulnerable to heartbleed\n", "")
    assert "Compression enabled" not in text
    assert "Server supports TLS Fallback SCSV" in text


def test_min_tls12_offers_the_six_default_suites(tmp_path: Path) -> None:
    scan = scan_with(tmp_path, {"min_version": "TLS12"})
    assert scan["enabled"] == ["TLSv1.2", "TLSv1.3"]
    assert set(scan["tls12"]) == TLS12_DEFAULTS and len(scan["tls12"]) == 6
    assert scan["tls13"] == TLS13


def test_curve_preferences(tmp_path: Path) -> None:
    scan = scan_with(tmp_path, {"curve_preferences": [23]})
    assert scan["groups"] == ["P-256"] and not scan["x25519"]


def test_max_tls12_refuses_tls13(tmp_path: Path) -> None:
    scan = scan_with(tmp_path, {"min_version": "TLS12", "max_version": "TLS12",
                                "cipher_suites": [49199, 49195]})
    assert scan["enabled"] == ["TLSv1.2"]
    assert set(scan["tls12"]) == {"ECDHE-RSA-AES128-GCM-SHA256",
                                  "ECDHE-ECDSA-AES128-GCM-SHA256"}
