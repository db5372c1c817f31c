"""Upstream TLS defaults OpenSSL refuses stop the node at start, not every snapshot build."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.settings.load import load
from gateway.tls.client import ClientProfile, client_context, client_defaults
from tests.pki import weak_rsa_pair


def settings(tmp_path: Path, **values: Any) -> Any:
    path = tmp_path / "ramparts.json"
    path.write_text(json.dumps(values))
    return load(str(path), env={})


def test_the_defaults_are_built_once_at_start(tmp_path: Path) -> None:
    defaults = client_defaults(settings(tmp_path, client_tls={"min_version": "TLS12"}))
    assert defaults.min_version == "TLS12"


def test_only_legacy_suites_openssl_dropped_are_refused(tmp_path: Path) -> None:
    # RC4-SHA passes the settings check (KrakenD lists it) but this OpenSSL has no RC4
    chosen = settings(tmp_path, client_tls={"min_version": "TLS12",
                                            "cipher_suites": [4865, 5]})
    with pytest.raises(ValueError, match="OpenSSL refuses the client TLS settings: "):
        client_defaults(chosen)
    # before, each https service's context failed, and with it every snapshot build
    with pytest.raises(OSError):
        client_context(ClientProfile(tls12_ciphers=("RC4-SHA",)))


def test_a_client_certificate_openssl_refuses_is_refused(tmp_path: Path) -> None:
    cert, key = weak_rsa_pair()
    (tmp_path / "c.crt").write_text(cert)
    (tmp_path / "c.key").write_text(key)
    chosen = settings(tmp_path, client_ssl_cert=str(tmp_path / "c.crt"),
                      client_ssl_cert_key=str(tmp_path / "c.key"))
    with pytest.raises(ValueError, match="ee key too small"):
        client_defaults(chosen)
