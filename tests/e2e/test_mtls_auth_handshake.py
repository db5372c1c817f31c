"""Which handshakes carry a CertificateRequest (``openssl s_client -msg`` shows each
handshake message): only the SNIs of a route restricted by ``snis``, with the CA names when
``send_ca_dn`` is set; and a session is never resumed where a certificate is asked for."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.gateway import Node, every_worker_applied, node, upstream
from tests.e2e.proc import wait_for
from tests.pki import Pki

pytestmark = pytest.mark.e2e


def hello(port: int, servername: str | None, *args: str, request: bytes = b"") -> str:
    sni = ["-servername", servername] if servername else ["-noservername"]
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-msg",
                          *sni, *args], input=request, capture_output=True, timeout=15)
    return out.stdout.decode(errors="replace")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("mtls-handshake")
    with node(work, f"sqlite:///{work}/r.db") as running:
        yield running


def test_certificate_request_only_for_the_routes_snis(gw: Node, pki: Pki) -> None:
    with upstream("echo") as up:
        ca = gw.call("POST", "/ca_certificates", json={"cert": pki.read("s003/ca.crt")})
        assert ca.status_code == 201, ca.text
        gw.call("POST", "/services", json={"name": "s", "url": f"http://127.0.0.1:{up}"})
        r = gw.call("POST", "/services/s/routes", json={
            "name": "r", "protocols": ["https"], "snis": ["mtls.test", "*.wild.test"],
            "paths": ["/"]})
        assert r.status_code == 201, r.text
        assert "CertificateRequest" not in hello(gw.https_port, "mtls.test")
        r = gw.call("POST", "/routes/r/plugins", json={
            "name": "mtls-auth", "config": {"ca_certificates": [ca.json()["id"]],
                                            "send_ca_dn": True}})
        assert r.status_code == 201, r.text
        asked = wait_for(lambda: (out := hello(gw.https_port, "mtls.test"))
                         and "CertificateRequest" in out and out, 10, "a CertificateRequest")
        assert "Acceptable client certificate CA names" in asked
        assert "CN = My Test CA" in asked or "CN=My Test CA" in asked
        assert "CertificateRequest" in hello(gw.https_port, "a.b.wild.test")
        for other in ("other.test", None):
            assert "CertificateRequest" not in hello(gw.https_port, other), other


def test_no_session_resumption_where_a_certificate_is_asked(gw: Node) -> None:
    """TLS 1.3 tickets: none is issued on a connection that was asked for a certificate,
    while other SNIs keep theirs."""
    wait_for(lambda: "CertificateRequest" in hello(gw.https_port, "mtls.test"), 10,
             "the plugin of the previous test")
    # an HTTP/1.0 request keeps s_client reading until the server closes: tickets arrive
    # after the handshake
    get = b"GET /__health HTTP/1.0\r\n\r\n"
    asked = hello(gw.https_port, "mtls.test", "-ign_eof", request=get)
    assert "HTTP/1.1 " in asked and "NewSessionTicket" not in asked
    plain = hello(gw.https_port, "other.test", "-ign_eof", request=get)
    assert "NewSessionTicket" in plain


def test_without_the_bridge_every_handshake_asks_and_openssl_verifies(
        tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> None:
    """design.md's fallback: trusted clients get in, no certificate gets mtls-auth's 401,
    a certificate from another CA fails the handshake (stdlib cannot do better)."""
    work = tmp_path_factory.mktemp("mtls-no-bridge")
    for name in ("client.crt", "client.key"):
        (work / name).write_text(pki.read(f"s003/{name}"))
        (work / f"other-{name}").write_text(pki.read(f"s001/{name}"))
    with upstream("echo") as up, node(work, f"sqlite:///{work}/r.db",
                                      env={"RAMPARTS_LIBSSL_BRIDGE": "off"}) as gw:
        assert "CertificateRequest" not in hello(gw.https_port, None)
        ca = gw.call("POST", "/ca_certificates", json={"cert": pki.read("s003/ca.crt")})
        gw.call("POST", "/services", json={"name": "s", "url": f"http://127.0.0.1:{up}"})
        gw.call("POST", "/services/s/routes", json={"name": "r", "paths": ["/"]})
        r = gw.call("POST", "/routes/r/plugins", data={
            "name": "mtls-auth", "config.ca_certificates": ca.json()["id"],
            "config.skip_consumer_lookup": "true"})
        assert r.status_code == 201, r.text

        def answer(*args: str) -> tuple[int, str]:
            out = subprocess.run(["curl", "-sk", *args, "-w", "\n%{http_code}",
                                  f"https://127.0.0.1:{gw.https_port}/"], cwd=work,
                                 capture_output=True, text=True, timeout=15)
            body, _, code = out.stdout.rpartition("\n")
            return int(code or 0), body

        mine = ("--cert", "client.crt", "--key", "client.key")
        # the route answered 200 before its plugin existed: wait for the plugin's version
        wait_for(lambda: every_worker_applied(gw), 10, "the plugin live on the worker")
        wait_for(lambda: answer(*mine)[0] == 200, 10, "a 200 for a trusted client")
        code, body = answer()
        assert (code, json.loads(body)) == (
            401, {"message": "No required TLS certificate was sent"})
        assert answer("--cert", "other-client.crt", "--key", "other-client.key")[0] == 0
        # the handshake failure reaches the client as OpenSSL's alert, not an empty reply
        other = subprocess.run(["curl", "-sSk", "--cert", "other-client.crt", "--key",
                                "other-client.key", f"https://127.0.0.1:{gw.https_port}/"],
                               cwd=work, capture_output=True, text=True, timeout=15)
        assert "alert unknown ca" in other.stderr, other.stderr
        assert "CertificateRequest" in hello(gw.https_port, "any.test")
        log = gw.running.output()
        assert log.count("mtls-auth without the libssl bridge") == 1
        r = gw.call("DELETE", f"/plugins/{r.json()['id']}")
        wait_for(lambda: "CertificateRequest" not in hello(gw.https_port, None), 10,
                 "no more CertificateRequest")
