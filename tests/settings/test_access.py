"""The Admin API access settings and their cross-field rules (gateway/settings/access.py)."""

from __future__ import annotations

import json

import pytest

from admin.http import dumps
from gateway.settings.load import SettingsError, load, redacted
from tests.pki import UpstreamPki


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(env=env)
    return caught.value.problems


def test_defaults_keep_kongs_loopback_behaviour() -> None:
    s = load(env={})
    assert (s.admin_auth, s.admin_gui_origin, s.admin_server_names) == ("off", (), ())
    assert (s.admin_ssl_cert, s.admin_ssl_client_ca, s.admin_client_roles) == ((), (), None)


@pytest.mark.parametrize("entry", ["0.0.0.0:8001", "[::]:8001", "*:8001", "10.0.0.1:8001",
                                   "admin.internal:8001", "127.0.0.1:8001, 0.0.0.0:8444 ssl"])
def test_non_loopback_listen_needs_auth(entry: str) -> None:
    found = problems({"RAMPARTS_ADMIN_LISTEN": entry})
    assert len(found) == 1 and found[0].startswith("admin_listen: ")
    assert "is not a loopback address and admin_auth is off" in found[0]
    for mode in ("on", "required"):
        assert load(env={"RAMPARTS_ADMIN_LISTEN": entry, "RAMPARTS_ADMIN_AUTH": mode})


@pytest.mark.parametrize("entry", ["127.0.0.1:8001", "127.0.0.2:8001", "[::1]:8001",
                                   "localhost:8001", "off"])
def test_loopback_listen_needs_nothing(entry: str) -> None:
    assert load(env={"RAMPARTS_ADMIN_LISTEN": entry}).admin_auth == "off"


def test_client_certificate_settings_need_each_other(upki: UpstreamPki) -> None:
    ca = upki.path("clientca.crt")
    assert problems({"RAMPARTS_ADMIN_SSL_CLIENT_CA": ca}) == [
        "admin_ssl_client_ca: needs an admin_listen entry with the ssl flag "
        "(e.g. '127.0.0.1:8444 ssl')"]
    assert problems({"RAMPARTS_ADMIN_CLIENT_ROLES": '{"CN=ops": "admin"}'}) == [
        "admin_client_roles: needs admin_ssl_client_ca (the CA that signs the client "
        "certificates)"]
    assert problems({"RAMPARTS_ADMIN_CLIENT_ROLES": '{"CN=ops": "root"}'})[0].startswith(
        "admin_client_roles: expected one of: admin, read-only")
    s = load(env={"RAMPARTS_ADMIN_LISTEN": "127.0.0.1:8444 ssl",
                  "RAMPARTS_ADMIN_SSL_CLIENT_CA": ca,
                  "RAMPARTS_ADMIN_CLIENT_ROLES": '{"CN=ops": "admin", "CN=a": "read-only"}'})
    assert dict(s.admin_client_roles or {}) == {"CN=ops": "admin", "CN=a": "read-only"}
    shown = json.loads(dumps(redacted(s)))  # GET / shows the settings
    assert shown["admin_client_roles"] == {"CN=ops": "admin", "CN=a": "read-only"}


def test_admin_certificate_pairs(upki: UpstreamPki) -> None:
    assert problems({"RAMPARTS_ADMIN_SSL_CERT": upki.path("depth0.crt")}) == [
        "admin_ssl_cert_key: must be specified"]
    mismatch = problems({"RAMPARTS_ADMIN_SSL_CERT": upki.path("depth0.crt"),
                         "RAMPARTS_ADMIN_SSL_CERT_KEY": upki.path("depth1.key")})
    assert mismatch[0].startswith("admin_ssl_cert_key: does not match the certificate")


@pytest.mark.parametrize(("key", "value"), [("RAMPARTS_ADMIN_AUTH", "maybe"),
                                            ("RAMPARTS_ADMIN_SERVER_NAMES", "a.example:8001"),
                                            ("RAMPARTS_ADMIN_SERVER_NAMES", "a b")])
def test_bad_values_name_their_key(key: str, value: str) -> None:
    assert problems({key: value})[0].startswith(key.removeprefix("RAMPARTS_").lower())


@pytest.mark.parametrize(("url", "origin"), [
    ("http://localhost:8002", "http://localhost:8002"),
    ("http://localhost:8002/manager/", "http://localhost:8002"),
    ("HTTPS://Admin.Example.com:443/x", "https://admin.example.com"),
    ("http://[::1]:8002", "http://[::1]:8002"),
    ("http://ui.example:80", "http://ui.example"),
])
def test_kongs_admin_gui_url_gives_its_origin(url: str, origin: str) -> None:
    from gateway.settings.access import origin_of

    assert load(env={"RAMPARTS_ADMIN_GUI_URL": url}).admin_gui_url == (url,)
    assert origin_of(url) == origin


@pytest.mark.parametrize("url", ["localhost:8002", "ftp://x.example", "http://", "http://x:99999"])
def test_bad_admin_gui_url(url: str) -> None:
    assert problems({"RAMPARTS_ADMIN_GUI_URL": url})[0].startswith(
        "admin_gui_url.1: expected an http(s) URL")
