"""TLS termination: certificates by SNI (Kong's order), RSA/ECDSA pairs, live changes."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gateway import Node, curl_subject, node, served_key_bits, served_subject
from tests.e2e.proc import wait_for
from tests.pki import self_signed

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    d = tmp_path_factory.mktemp("sni-certs")
    return {name: self_signed(d, name, cn, alg) for name, cn, alg in [
        ("exact", "exact", "rsa"), ("prefix", "prefix-wildcard", "rsa"),
        ("suffix", "suffix-wildcard", "rsa"), ("star", "catch-all", "rsa"),
        ("rsa", "dual", "rsa"), ("ecdsa", "dual", "ec"), ("v1", "v1", "rsa"),
        ("v2", "v2", "rsa")]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("tls-node")
    with node(work, f"sqlite:///{work}/r.db") as running:
        yield running


def add_cert(gw: Node, pair: tuple[str, str], snis: list[str], **extra: str) -> str:
    r = gw.call("POST", "/certificates", json={"cert": pair[0], "key": pair[1], "snis": snis,
                                               **extra})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_kong_lookup_order(gw: Node, certs: dict[str, tuple[str, str]]) -> None:
    add_cert(gw, certs["exact"], ["a.b.test"])
    add_cert(gw, certs["prefix"], ["*.b.test"])
    add_cert(gw, certs["suffix"], ["x.*"])
    wait_for(lambda: served_subject(gw.https_port, "a.b.test") == "CN=exact", 2,
             "the certificates to go live")
    default = served_subject(gw.https_port, None)
    assert default == "CN=localhost"  # no SNI: the default certificate
    table = {
        "a.b.test": "CN=exact",           # exact name
        "z.b.test": "CN=prefix-wildcard",  # *.b.test
        "x.org": "CN=suffix-wildcard",     # x.*
        "y.z.b.test": default,             # *.b.test covers one label only, as in Kong
        "unknown.test": default,           # no '*' SNI yet: the default
    }
    for name, subject in table.items():
        assert served_subject(gw.https_port, name) == subject, name
        assert curl_subject(name, gw.https_port) == subject, name
    add_cert(gw, certs["star"], ["*"])
    wait_for(lambda: served_subject(gw.https_port, "unknown.test") == "CN=catch-all", 2,
             "the '*' SNI to go live")
    assert served_subject(gw.https_port, "a.b.test") == "CN=exact"
    assert served_subject(gw.https_port, None) == "CN=localhost"  # '*' never serves no-SNI


def test_each_client_gets_its_key_type(gw: Node, certs: dict[str, tuple[str, str]]) -> None:
    rsa, ecdsa = certs["rsa"], certs["ecdsa"]
    add_cert(gw, rsa, ["dual.test"], cert_alt=ecdsa[0], key_alt=ecdsa[1])
    wait_for(lambda: served_subject(gw.https_port, "dual.test") == "CN=dual", 2, "dual.test")
    assert served_key_bits(gw.https_port, "dual.test", "-sigalgs", "ECDSA+SHA256") == "256"
    assert served_key_bits(gw.https_port, "dual.test", "-sigalgs",
                           "RSA-PSS+SHA256:RSA+SHA256") == "2048"


def test_changes_are_served_by_the_next_handshake(gw: Node, certs: dict[str, tuple[str, str]]
                                                  ) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    kept = http.client.HTTPSConnection("127.0.0.1", gw.https_port, context=ctx, timeout=10)
    kept.request("GET", "/__health", headers={"Host": "live.test"})
    assert kept.getresponse().read()

    cert_id = add_cert(gw, certs["v1"], ["live.test"])
    wait_for(lambda: served_subject(gw.https_port, "live.test") == "CN=v1", 1,
             "POSTed certificate on the next handshake")
    r = gw.call("PATCH", f"/certificates/{cert_id}", json={"cert": certs["v2"][0],
                                                          "key": certs["v2"][1]})
    assert r.status_code == 200
    wait_for(lambda: served_subject(gw.https_port, "live.test") == "CN=v2", 1,
             "PATCHed certificate on the next handshake")
    assert gw.call("DELETE", f"/certificates/{cert_id}").status_code == 204
    # a failed handshake would also differ from CN=v2: require what an unknown name gets
    # (the default certificate, or the `*` SNI's if another test of this module added one)
    fallback = served_subject(gw.https_port, "nobody.invalid")
    assert fallback in ("CN=localhost", "CN=catch-all"), fallback
    wait_for(lambda: served_subject(gw.https_port, "live.test") == fallback, 1,
             "DELETEd certificate to give way to the fallback one")

    kept.request("GET", "/__health", headers={"Host": "live.test"})  # the old connection lives
    response = kept.getresponse()
    assert response.status == 200 and b'"status":"ok"' in response.read()
    kept.close()


def test_certificates_propagate_across_a_postgres_cluster(
        tmp_path: Path, certs: dict[str, tuple[str, str]]) -> None:
    from tests.conftest import create_pg_database, drop_pg_database, pg_url

    name = create_pg_database("ramparts_cluster")
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        # node B polls only every 30 s: within the deadline only NOTIFY can reach it
        with node(tmp_path / "a", pg_url(name)) as a, \
                node(tmp_path / "b", pg_url(name), db_update_frequency=30) as b:
            add_cert(a, certs["exact"], ["cluster.test"])
            wait_for(lambda: served_subject(b.https_port, "cluster.test") == "CN=exact", 1,
                     "node B to serve a certificate written through node A")
    finally:
        drop_pg_database(name)
