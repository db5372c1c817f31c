"""Where the Admin API may be called from: the Host check (DNS rebinding) and CORS."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from admin.access import Cors, cors_verdict, host_name
from gateway.db.store import Store
from tests.admin.apps import admin_client

EVIL = "https://evil.example"
UI = "https://ui.example"
PREFLIGHT = {"origin": EVIL, "access-control-request-method": "DELETE"}


@pytest.mark.parametrize(("method", "origin", "allowed", "same", "preflight", "verdict"), [
    ("GET", None, False, False, False, Cors.PLAIN),
    ("OPTIONS", None, False, False, False, Cors.PLAIN),
    ("GET", UI, True, False, False, Cors.ALLOW),
    ("OPTIONS", UI, True, False, True, Cors.ALLOW),
    ("DELETE", UI, True, False, False, Cors.ALLOW),
    ("POST", "http://localhost:8001", False, True, False, Cors.STRIP),
    ("GET", EVIL, False, False, False, Cors.STRIP),
    ("HEAD", EVIL, False, False, False, Cors.STRIP),
    ("OPTIONS", EVIL, False, False, False, Cors.STRIP),  # an OPTIONS that is no preflight
    ("OPTIONS", EVIL, False, False, True, Cors.REFUSE),
    ("POST", EVIL, False, False, False, Cors.REFUSE),  # a form POST needs no preflight
    ("PUT", EVIL, False, False, False, Cors.REFUSE),
    ("DELETE", "null", False, False, False, Cors.REFUSE),  # sandboxed pages send "null"
])
def test_cors_verdicts(method: str, origin: str | None, allowed: bool, same: bool,
                       preflight: bool, verdict: Cors) -> None:
    assert cors_verdict(method, origin, allowed, same, preflight) is verdict


@pytest.mark.parametrize(("header", "name"), [
    ("localhost:8001", "localhost"), ("LocalHost", "localhost"), ("[::1]:8001", "::1"),
    ("[::1]", "::1"), ("127.0.0.1:8001", "127.0.0.1"), ("attacker.example:8001",
                                                         "attacker.example"),
    ("", None), (":8001", None), ("[::1", None), ("localhost:80x", None),
    ("[::1]x", None), ("a:b:c", None),
])
def test_host_names(header: str, name: str | None) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize("host", ["attacker.example:8001", "attacker.example",
                                  "127.0.0.1.nip.io:8001", "localhost.evil.example:8001",
                                  "10.0.0.5:8001", "[::1"])
async def test_foreign_host_is_misdirected_and_sees_nothing(admin: httpx.AsyncClient,
                                                            host: str) -> None:
    await admin.post("/consumers", json={"username": "secret-holder"})
    r = await admin.get("/consumers", headers={"host": host})
    assert r.status_code == 421
    assert "secret-holder" not in r.text
    assert r.json()["message"].startswith("Misdirected Request: this Admin API does not "
                                          "answer for host")
    r = await admin.post("/consumers", json={"username": "planted"}, headers={"host": host})
    assert r.status_code == 421
    names = [c["username"] for c in (await admin.get("/consumers")).json()["data"]]
    assert names == ["secret-holder"]


@pytest.mark.parametrize("host", ["localhost:8001", "LOCALHOST:8001", "localhost",
                                  "127.0.0.1:8001", "127.0.0.1", "[::1]:8001", "[::1]"])
async def test_own_names_are_answered(admin: httpx.AsyncClient, host: str) -> None:
    assert (await admin.get("/status", headers={"host": host})).status_code == 200


async def test_configured_server_names_and_wildcard_listen_address(store: Store) -> None:
    env = {"RAMPARTS_ADMIN_SERVER_NAMES": "admin.example.com, [fd00::1]"}
    async with admin_client(store, env) as admin:
        for host in ("admin.example.com", "Admin.Example.com:8001", "[fd00::1]:8001"):
            assert (await admin.get("/status", headers={"host": host})).status_code == 200
        assert (await admin.get("/status", headers={"host": "other.example.com"})
                ).status_code == 421
    # on 0.0.0.0 "our address" is the one the connection arrived on
    env = {"RAMPARTS_ADMIN_LISTEN": "0.0.0.0:8001", "RAMPARTS_ADMIN_AUTH": "on"}
    async with admin_client(store, env, base_url="http://10.1.2.3:8001") as admin:
        assert (await admin.get("/status")).status_code == 401  # past the Host check
        assert (await admin.get("/status", headers={"host": "10.9.9.9:8001"})
                ).status_code == 421


async def test_no_origin_configured_no_page_can_read_or_write(admin: httpx.AsyncClient
                                                              ) -> None:
    await admin.post("/consumers", json={"username": "c1"})
    r = await admin.get("/consumers", headers={"origin": EVIL})
    assert r.status_code == 200  # the browser gets it, but without CORS headers the page
    assert not [h for h in r.headers if h.startswith("access-control-")]  # cannot read it
    r = await admin.options("/consumers/c1", headers=PREFLIGHT)
    assert r.status_code == 403
    assert r.json()["message"] == ("Origin 'https://evil.example' is not allowed to call the "
                                   "Admin API (see admin_gui_origin)")
    assert not [h for h in r.headers if h.startswith("access-control-")]
    # a form POST is sent without a preflight: refused for its Origin, nothing created
    r = await admin.post("/consumers", data={"username": "csrf"}, headers={"origin": EVIL})
    assert r.status_code == 403
    r = await admin.delete("/consumers/c1", headers={"origin": "null"})
    assert r.status_code == 403
    names = [c["username"] for c in (await admin.get("/consumers")).json()["data"]]
    assert names == ["c1"]


async def test_same_origin_and_plain_clients_keep_working(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/consumers", json={"username": "same"},
                         headers={"origin": "http://localhost:8001"})
    assert r.status_code == 201
    r = await admin.options("/consumers", headers={"access-control-request-headers": "X-A"})
    assert r.status_code == 204 and r.headers["access-control-allow-headers"] == "X-A"


async def test_configured_origin_gets_kongs_headers_others_nothing(store: Store) -> None:
    env = {"RAMPARTS_ADMIN_GUI_ORIGIN": f"{UI}, http://localhost:8002"}
    async with admin_client(store, env) as admin:
        r = await admin.get("/consumers", headers={"origin": UI})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == UI
        assert r.headers["access-control-allow-credentials"] == "true"
        assert r.headers["vary"] == "Origin"
        r = await admin.options("/consumers/x", headers={
            "origin": "http://localhost:8002", "access-control-request-method": "DELETE",
            "access-control-request-headers": "Kong-Admin-Token,Content-Type"})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "http://localhost:8002"
        assert r.headers["access-control-allow-methods"] == \
            "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
        assert r.headers["access-control-allow-headers"] == "Kong-Admin-Token,Content-Type"
        r = await admin.post("/consumers", json={"username": "from-ui"}, headers={"origin": UI})
        assert r.status_code == 201 and r.headers["access-control-allow-origin"] == UI
        # an origin that differs in scheme, port or case is another origin
        for other in (EVIL, "http://ui.example", "https://ui.example:8443",
                      "https://UI.example"):
            r = await admin.get("/consumers", headers={"origin": other})
            assert not [h for h in r.headers if h.startswith("access-control-")]
            assert "vary" not in r.headers
            r = await admin.options("/consumers", headers={
                "origin": other, "access-control-request-method": "POST"})
            assert r.status_code == 403


@pytest.mark.parametrize(("value", "problem"), [
    ("*", "wildcards are not allowed"),
    ("https://*.example.com", "wildcards are not allowed"),
    ("https://ui.example/", "without a path or trailing slash"),
    ("ui.example", "expected an origin"),
    ("https://UI.example", "in lower case"),
    ("https://ui.example:443", "leave the default port out"),
])
def test_bad_origins_are_refused_at_load(value: str, problem: str) -> None:
    from gateway.settings.load import SettingsError, load

    with pytest.raises(SettingsError) as caught:
        load(env={"RAMPARTS_ADMIN_GUI_ORIGIN": value})
    assert caught.value.problems[0].startswith("admin_gui_origin.1: ")
    assert problem in caught.value.problems[0]


async def test_kongs_admin_gui_url_opens_cors_for_its_origin(store: Store) -> None:
    env = {"RAMPARTS_ADMIN_GUI_URL": "http://localhost:8002/manager"}
    async with admin_client(store, env) as admin:
        r = await admin.get("/status", headers={"origin": "http://localhost:8002"})
        assert r.headers["access-control-allow-origin"] == "http://localhost:8002"


async def test_refused_requests_are_attributed_to_their_peer(store: Store) -> None:
    """``scope["ramparts.actor"]`` is set even when the Host or Origin check refuses."""
    from admin.access import AccessPolicy, OriginGuard
    from admin.auth import ACTOR
    from gateway.settings.load import load

    seen: list[str] = []
    guard = OriginGuard(_never_called, AccessPolicy.from_settings(load(env={})))

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        await guard(scope, receive, send)
        seen.append(scope[ACTOR])

    transport = httpx.ASGITransport(app=outer, client=("127.0.0.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8001") as c:
        assert (await c.get("/", headers={"host": "evil.example"})).status_code == 421
        assert (await c.post("/", headers={"origin": EVIL})).status_code == 403
    assert seen == ["peer:127.0.0.9", "peer:127.0.0.9"]


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("a refused request reached the app")
