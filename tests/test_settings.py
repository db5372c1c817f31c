"""Settings: file + RAMPARTS_* overrides, KrakenD's tls blocks, errors that name their key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import listen
from gateway.settings.load import SettingsError, load
from tests.pki import Pki


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def problems(path: str | None = None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load(path, env=env or {})
    return info.value.problems


def test_defaults() -> None:
    s = load(env={})
    assert s.database == "sqlite:///ramparts.db"
    assert [str(x) for x in s.admin_listeners] == ["127.0.0.1:8001"]
    assert [(x.port, x.ssl) for x in s.proxy_listeners] == [(8000, False), (8443, True)]
    assert listen.parse(s.stream_listen) == ()
    assert s.lua_ssl_trusted_certificate == ("system",)
    assert s.tls is None and s.client_tls is None
    assert s.admin_max_body_bytes == 10 * 1024 * 1024


def test_krakend_tls_defaults_match_seed_000(tmp_path: Path) -> None:
    s = load(write(tmp_path / "k.json", json.dumps({"tls": {}, "client_tls": {}})), env={})
    assert s.tls is not None and s.client_tls is not None
    assert s.tls.cipher_suites == (4865, 4866, 4867)
    assert s.tls.curve_preferences == (23, 24, 25)
    assert (s.tls.min_version, s.tls.max_version) == ("TLS13", "TLS13")
    assert (s.tls.enable_mtls, s.tls.disabled, s.tls.disable_system_ca_pool) == (False,) * 3
    assert s.tls.ca_certs == ()
    assert s.client_tls.allow_insecure_connections is False
    assert s.client_tls.client_certs == ()


def test_seed_001_krakend_file_pastes_in(tmp_path: Path, pki: Pki,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pki.dir / "s001")
    seed = {"version": 3, "$schema": "https://www.krakend.io/schema/v2.3/krakend.json",
            "port": 443, "@comment": "seed 001",
            "tls": {"public_key": "./server.crt", "private_key": "./server.key",
                    "enable_mtls": True, "ca_certs": ["./rootCA.pem"],
                    "disable_system_ca_pool": True}}
    s = load(write(tmp_path / "krakend.json", json.dumps(seed)), env={})
    assert s.port == 443 and s.tls is not None and s.tls.enable_mtls
    assert s.tls.ca_certs == ("./rootCA.pem",)


def test_yaml_and_env_overrides(tmp_path: Path, pki: Pki) -> None:
    path = write(tmp_path / "r.yaml", f"""
database: sqlite:///from-file.db
stream_listen: off
ssl_cert: {pki.path('s003/server.crt')}
ssl_cert_key: {pki.path('s003/server.key')}
log_level: info
""")
    env = {"RAMPARTS_DATABASE": "postgresql://postgres@127.0.0.1:5432/test",
           "RAMPARTS_ADMIN_LISTEN": "127.0.0.1:9001, [::1]:9001 reuseport backlog=128",
           "RAMPARTS_TLS": json.dumps({"min_version": "TLS12"}),
           "RAMPARTS_PORT": "8443"}
    s = load(path, env=env)
    assert s.database == "postgresql://postgres@127.0.0.1:5432/test"
    assert [(x.bind_host, x.port, x.reuseport, x.backlog) for x in s.admin_listeners] == [
        ("127.0.0.1", 9001, False, None), ("::1", 9001, True, 128)]
    assert s.stream_listen == ("off",) and s.port == 8443
    assert s.tls is not None and s.tls.min_version == "TLS12"
    assert s.ssl_cert == (pki.path("s003/server.crt"),) and s.log_level == "info"


def test_every_error_names_its_key(tmp_path: Path, pki: Pki) -> None:
    path = write(tmp_path / "bad.yaml", f"""
foo: 1
port: nope
database: mysql://x
proxy_listen: "0.0.0.0:8000 sssl"
ssl_cert: /nonexistent/cert.pem
client_ssl_cert: {pki.path('s003/server.crt')}
client_ssl_cert_key: {pki.path('s003/client.key')}
tls:
  min_version: TLS10
  curve_preferences: [22]
  cipher_suites: [4865, 1]
  ca_certs: [{pki.path('s003/server.key')}]
""")
    found = problems(path)
    joined = "\n".join(found)
    for key in ("foo: unknown field", "port: expected an integer", "database: expected a",
                "proxy_listen.1: must be of form", "ssl_cert.1: cannot read file",
                "client_ssl_cert_key: does not match the certificate",
                "tls.curve_preferences.1: expected one of: 23, 24, 25, 29",
                "tls.cipher_suites.2: unknown cipher suite 1",
                "tls.ca_certs.1: invalid certificate"):
        assert key in joined, (key, found)
    assert "ssl_cert_key: must be specified" in joined


def test_old_tls_needs_explicit_suites(tmp_path: Path) -> None:
    found = problems(write(tmp_path / "t.yaml", "tls: {min_version: TLS11}\n"))
    assert found == ["tls.cipher_suites: min_version TLS11 needs cipher_suites listing the "
                     "pre-TLS 1.3 suites to offer"]
    ok = load(write(tmp_path / "t2.yaml", "tls: {min_version: TLS11, cipher_suites: [4865, "
                                          "49199, 47]}\n"), env={})
    assert ok.tls is not None and ok.tls.min_version == "TLS11"
    found = problems(write(tmp_path / "t3.yaml", "tls: {min_version: TLS13, "
                                                 "max_version: TLS12}\n"))
    assert found == ["tls.min_version: must not be above max_version (TLS12)"]


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    assert problems(str(tmp_path / "missing.yaml"))[0].startswith(
        f"-c {tmp_path / 'missing.yaml'}: cannot read the settings file")
    bad = write(tmp_path / "bad.json", "{not json")
    assert "not valid JSON" in problems(bad)[0]


def test_ramparts_check_prints_every_error(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "admin_listen: nowhere\nlog_level: loud\n")
    out = subprocess.run([sys.executable, "-m", "admin.cli", "check", "-c", path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("admin_listen.1: must be of form")
    assert lines[1] == "log_level: expected one of: debug, info, notice, warn, error, crit"
    good = write(tmp_path / "good.yaml", "log_level: debug\n")
    out = subprocess.run([sys.executable, "-m", "admin.cli", "check", "-c", good],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "is valid" in out.stdout


def test_krakend_port_and_disabled_tls(tmp_path: Path) -> None:
    tls_port = load(write(tmp_path / "a.json", json.dumps(
        {"port": 9443, "listen_ip": "127.0.0.1", "tls": {}})), env={})
    assert [(x.bind_host, x.port, x.ssl) for x in tls_port.proxy_listeners] == [
        ("127.0.0.1", 9443, True)]
    off = load(write(tmp_path / "b.json", json.dumps(
        {"port": 9080, "listen_ip": "::1", "tls": {"disabled": True}})), env={})
    assert [(x.bind_host, x.port, x.ssl) for x in off.proxy_listeners] == [("::1", 9080, False)]
    kong = load(write(tmp_path / "c.json", json.dumps({"tls": {"disabled": True}})), env={})
    assert [x.ssl for x in kong.proxy_listeners] == [False, False]
    plain = load(write(tmp_path / "d.json", json.dumps({"port": 8080})), env={})
    assert [x.ssl for x in plain.proxy_listeners] == [False]


def test_listen_edge_cases_from_the_environment() -> None:
    s = load(None, env={"RAMPARTS_ADMIN_LISTEN": "[::1]:8001"})  # IPv6 first: not JSON
    assert [(x.bind_host, x.port) for x in s.admin_listeners] == [("::1", 8001)]
    with pytest.raises(SettingsError) as caught:
        load(None, env={"RAMPARTS_ADMIN_LISTEN": "off, 127.0.0.1:8001"})
    assert caught.value.problems == [
        "admin_listen: 'off' cannot be combined with other addresses"]


def test_zero_admin_body_size_means_no_limit() -> None:
    assert load(None, env={"RAMPARTS_ADMIN_MAX_BODY_SIZE": "0"}).admin_max_body_bytes > 2**40
    assert load(None, env={}).admin_max_body_bytes == 10 * 1024 * 1024
