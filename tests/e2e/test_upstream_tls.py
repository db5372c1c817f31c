"""Upstream TLS, seed 004's knobs one by one, against real HTTPS upstreams (own processes)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gateway import Node, node, tls_upstream
from tests.e2e.proc import wait_for
from tests.pki import UpstreamPki

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("upstream-tls-node")
    with node(work, f"sqlite:///{work}/r.db") as running:
        yield running


def ca_id(gw: Node, upki: UpstreamPki, name: str) -> str:
    r = gw.call("POST", "/ca_certificates", json={"cert": upki.read(f"{name}.crt")})
    if r.status_code == 409:  # posted by an earlier test of this module
        digest = r.json()["fields"]["cert_digest"]
        rows = gw.call("GET", "/ca_certificates?size=1000").json()["data"]
        return str(next(c["id"] for c in rows if c["cert_digest"] == digest))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def cert_id(gw: Node, upki: UpstreamPki, name: str) -> str:
    r = gw.call("POST", "/certificates", json={"cert": upki.read(f"{name}.crt"),
                                               "key": upki.read(f"{name}.key")})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def route(gw: Node, name: str, port: int, host: str = "localhost", **service: Any) -> str:
    body = {"url": f"https://{host}:{port}", "retries": 0, **service}
    r = gw.call("PUT", f"/services/{name}", json=body)
    assert r.status_code == 200, r.text
    r = gw.call("PUT", f"/routes/{name}", json={"paths": [f"/{name}"],
                                                "service": {"name": name}})
    assert r.status_code == 200, r.text
    return f"/{name}"


def status_eventually(gw: Node, path: str, status: int) -> Any:
    return wait_for(lambda: (r := gw.proxy(path)).status_code == status and r, 2,
                    f"{path} to answer {status}")


@pytest.mark.parametrize(("server", "ca", "expected", "cause"), [
    ("depth0", "root", 200, None),
    ("othersrv", "root", 502, "unknown CA"),
    ("selfsigned", "root", 502, "self-signed upstream certificate"),
    ("wrongname", "root", 502, "hostname mismatch"),
])
def test_tls_verify_with_service_cas(gw: Node, upki: UpstreamPki, server: str, ca: str,
                                     expected: int, cause: str | None) -> None:
    with tls_upstream(upki.path(f"{server}.crt"), upki.path(f"{server}.key")) as port:
        path = route(gw, f"v-{server}", port, tls_verify=True,
                     ca_certificates=[ca_id(gw, upki, ca)])
        r = status_eventually(gw, path, expected)
        if expected == 200:
            assert r.json()["sni"] == "localhost"
        else:
            assert r.json()["message"] == \
                "An invalid response was received from the upstream server"
            assert f"service v-{server}: TLS to https://localhost:{port} failed: {cause}" in \
                gw.running.output()


def test_verification_is_on_by_default_and_can_be_turned_off(gw: Node, upki: UpstreamPki
                                                             ) -> None:
    with tls_upstream(upki.path("selfsigned.crt"), upki.path("selfsigned.key")) as port:
        path = route(gw, "default-verify", port)  # tls_verify unset: verified (KrakenD)
        status_eventually(gw, path, 502)
        path = route(gw, "no-verify", port, tls_verify=False)
        status_eventually(gw, path, 200)


def test_no_sni_for_ip_literals(gw: Node, upki: UpstreamPki) -> None:
    with tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key")) as port:
        path = route(gw, "by-ip", port, host="127.0.0.1",
                     ca_certificates=[ca_id(gw, upki, "root")])
        assert status_eventually(gw, path, 200).json()["sni"] is None


def test_sni_follows_preserve_host(gw: Node, upki: UpstreamPki) -> None:
    with tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key")) as port:
        path = route(gw, "keep-host", port, tls_verify=False)
        r = gw.call("PATCH", "/routes/keep-host", json={"preserve_host": True})
        assert r.status_code == 200, r.text
        seen = wait_for(lambda: (r := gw.proxy(path, headers={"Host": "shop.test:8000"}).json())
                        ["host"] == "shop.test:8000" and r, 2, "the client's Host upstream")
        assert seen["sni"] == "shop.test"  # Kong: the preserved host is the SNI too
        r = gw.call("PATCH", "/routes/keep-host", json={"preserve_host": False})
        seen = wait_for(lambda: (r := gw.proxy(path, headers={"Host": "shop.test"}).json())
                        ["host"] == f"localhost:{port}" and r, 2, "the service's host upstream")
        assert seen["sni"] == "localhost"


def openssl_verify(upki: UpstreamPki, leaf: str, chain: list[str], depth: int) -> bool:
    untrusted = upki.dir / f"{leaf}-untrusted.pem"
    untrusted.write_text("".join(upki.read(f"{c}.crt") for c in chain))
    out = subprocess.run(["openssl", "verify", "-verify_depth", str(depth), "-CAfile",
                          upki.path("root.crt"), *(["-untrusted", str(untrusted)] if chain
                                                   else []), upki.path(f"{leaf}.crt")],
                         capture_output=True, timeout=30)
    return out.returncode == 0


@pytest.mark.parametrize(("leaf", "chain"), [("depth0", []), ("depth1", ["int1"]),
                                            ("depth2", ["int2", "int1"])])
def test_verify_depth_matches_openssl(gw: Node, upki: UpstreamPki, leaf: str,
                                      chain: list[str]) -> None:
    served = f"{leaf}.chain" if chain else f"{leaf}.crt"
    with tls_upstream(upki.path(served), upki.path(f"{leaf}.key")) as port:
        for depth in (0, 1, 2):
            expected = 200 if openssl_verify(upki, leaf, chain, depth) else 502
            path = route(gw, f"{leaf}-d{depth}", port, tls_verify=True, tls_verify_depth=depth,
                         ca_certificates=[ca_id(gw, upki, "root")])
            status_eventually(gw, path, expected)
            if expected == 502:  # this service's own line, not an earlier one's
                assert (f"service {leaf}-d{depth}: TLS to https://localhost:{port} failed: "
                        "certificate chain too long") in gw.running.output()


def test_client_certificates(gw: Node, upki: UpstreamPki) -> None:
    root = ca_id(gw, upki, "root")
    with tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key"),
                      upki.path("clientca.crt")) as port:
        path = route(gw, "mtls", port, ca_certificates=[root])
        status_eventually(gw, path, 502)
        assert f"service mtls: TLS to https://localhost:{port} failed: the upstream requires " \
               "a client certificate" in gw.running.output()

        stranger = cert_id(gw, upki, "stranger")  # signed by a CA the upstream does not trust
        route(gw, "mtls", port, ca_certificates=[root], client_certificate={"id": stranger})
        refused = f"service mtls: TLS to https://localhost:{port} failed: the upstream does " \
                  "not trust the client certificate"
        wait_for(lambda: gw.proxy(path).status_code == 502 and refused in gw.running.output(),
                 2, "the refused client certificate to be a 502 named in the log")

        svc = cert_id(gw, upki, "gateway-svc")
        route(gw, "mtls", port, ca_certificates=[root], client_certificate={"id": svc})
        r = status_eventually(gw, path, 200)
        assert r.json()["client_cn"] == "gateway-svc"
        first_port = r.json()["peer_port"]
        assert gw.proxy(path).json()["peer_port"] == first_port  # pooled

        # a new certificate is used within the reload deadline, never the old connection
        other = cert_id(gw, upki, "gateway-svc2")
        assert gw.call("PATCH", "/services/mtls",
                       json={"client_certificate": {"id": other}}).status_code == 200
        wait_for(lambda: gw.proxy(path).json()["client_cn"] == "gateway-svc2", 1,
                 "the new client certificate")
        for _ in range(10):
            seen = gw.proxy(path).json()
            assert seen["client_cn"] == "gateway-svc2" and seen["peer_port"] != first_port


def test_global_default_client_certificate(tmp_path: Path, upki: UpstreamPki) -> None:
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db",
              client_ssl_cert=upki.path("gateway-default.crt"),
              client_ssl_cert_key=upki.path("gateway-default.key"),
              lua_ssl_trusted_certificate=upki.path("root.crt")) as gw2, \
            tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key"),
                         upki.path("clientca.crt")) as port:
        path = route(gw2, "fallback", port)  # default trust: lua_ssl_trusted_certificate
        assert status_eventually(gw2, path, 200).json()["client_cn"] == "gateway-default"
        svc = cert_id(gw2, upki, "gateway-svc")
        route(gw2, "fallback", port, client_certificate={"id": svc})
        wait_for(lambda: gw2.proxy(path).json()["client_cn"] == "gateway-svc", 1,
                 "the service certificate to win over the default")


def test_krakend_client_tls_block(tmp_path: Path, upki: UpstreamPki) -> None:
    client_tls = {"allow_insecure_connections": True,
                  "client_certs": [{"certificate": upki.path("gateway-default.crt"),
                                    "private_key": upki.path("gateway-default.key")}]}
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db", client_tls=client_tls) as gw2, \
            tls_upstream(upki.path("selfsigned.crt"), upki.path("selfsigned.key"),
                         upki.path("clientca.crt")) as port:
        path = route(gw2, "insecure", port)  # verification off by default here
        assert status_eventually(gw2, path, 200).json()["client_cn"] == "gateway-default"
        path = route(gw2, "strict", port, tls_verify=True)  # the service turns it back on
        status_eventually(gw2, path, 502)


def test_expired_upstream_certificate(gw: Node, upki: UpstreamPki) -> None:
    with tls_upstream(upki.path("expired.crt"), upki.path("expired.key")) as port:
        path = route(gw, "expired", port, ca_certificates=[ca_id(gw, upki, "root")])
        status_eventually(gw, path, 502)
        assert "service expired: TLS to https://localhost" in gw.running.output()
        assert "upstream certificate expired" in gw.running.output()


def test_handshake_timeout(gw: Node) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP, never says a TLS word
    try:
        path = route(gw, "silent", silent.getsockname()[1], connect_timeout=300)
        r = status_eventually(gw, path, 504)
        assert r.json()["message"] == "The upstream server is timing out"
        assert "timed out connecting (TLS handshake included)" in gw.running.output()
    finally:
        silent.close()


def test_equal_profiles_share_a_pool(gw: Node, upki: UpstreamPki) -> None:
    root = ca_id(gw, upki, "root")
    with tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key")) as port:
        one = route(gw, "share-a", port, ca_certificates=[root])
        two = route(gw, "share-b", port, ca_certificates=[root])
        first = status_eventually(gw, one, 200).json()["peer_port"]
        assert status_eventually(gw, two, 200).json()["peer_port"] == first
        three = route(gw, "share-c", port, ca_certificates=[root], tls_verify_depth=3)
        assert status_eventually(gw, three, 200).json()["peer_port"] != first


def test_client_tls_versions_apply_upstream(tmp_path: Path, upki: UpstreamPki) -> None:
    client_tls: dict[str, Any] = {"ca_certs": [upki.path("root.crt")]}  # KrakenD: TLS 1.3
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db", client_tls=client_tls) as gw2, \
            tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key"),
                         max_tls12=True) as port:
        path = route(gw2, "old-upstream", port)
        status_eventually(gw2, path, 502)
    (tmp_path / "b").mkdir()
    client_tls["min_version"] = "TLS12"
    with node(tmp_path / "b", f"sqlite:///{tmp_path}/b.db", client_tls=client_tls) as gw3, \
            tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key"),
                         max_tls12=True) as port:
        path = route(gw3, "old-upstream", port)
        status_eventually(gw3, path, 200)


@pytest.mark.parametrize(("client_tls", "upstream", "expected"), [
    ({"curve_preferences": [23]}, {"group": "secp384r1"}, 502),
    ({"curve_preferences": [24]}, {"group": "secp384r1"}, 200),
    ({"min_version": "TLS12", "cipher_suites": [49195]},
     {"max_tls12": True, "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384"}, 502),
    ({"min_version": "TLS12", "cipher_suites": [49196]},
     {"max_tls12": True, "ciphers": "ECDHE-ECDSA-AES256-GCM-SHA384"}, 200),
])
def test_client_tls_curves_and_suites_apply_upstream(
        tmp_path: Path, upki: UpstreamPki, client_tls: dict[str, Any],
        upstream: dict[str, Any], expected: int) -> None:
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db",
              client_tls={"ca_certs": [upki.path("root.crt")], **client_tls}) as gw2, \
            tls_upstream(upki.path("depth0.crt"), upki.path("depth0.key"), **upstream) as port:
        status_eventually(gw2, route(gw2, "picky", port), expected)
        if expected == 502:
            assert f"service picky: TLS to https://localhost:{port} failed" in \
                gw2.running.output()


@pytest.mark.parametrize(("disable", "expected"), [(False, 200), (True, 502)])
def test_client_tls_system_ca_pool(tmp_path: Path, upki: UpstreamPki, disable: bool,
                                   expected: int) -> None:
    # OpenSSL's SSL_CERT_FILE stands in for the system pool: it holds the upstream's CA
    client_tls = {"ca_certs": [upki.path("root.crt")], "disable_system_ca_pool": disable}
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db", client_tls=client_tls,
              env={"SSL_CERT_FILE": upki.path("other.crt")}) as gw2, \
            tls_upstream(upki.path("othersrv.crt"), upki.path("othersrv.key")) as port:
        status_eventually(gw2, route(gw2, "system-ca", port), expected)
