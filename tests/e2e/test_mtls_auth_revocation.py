"""Revocation through a real node: OCSP answers made by ``openssl ocsp`` and a CRL made by
seed 003's ``openssl ca -gencrl`` line, served on 127.0.0.1; and the CRL uploaded with seed
003's curl line."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.proc import free_port, shell
from tests.e2e.revocation import Authority, serve
from tests.e2e.test_seed_003_mtls_auth import FAILED, cert, eventually, protect, request
from tests.pki import Pki, openssl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("revocation-node")
    with node(work, f"sqlite:///{work}/r.db") as running:
        yield running


@pytest.fixture(scope="module")
def up() -> Iterator[int]:
    with upstream("echo") as port:
        yield port


def new_ca(d: Path) -> Authority:
    openssl(d, "genrsa", "-out", "ca.key", "2048")
    openssl(d, "req", "-new", "-x509", "-key", "ca.key", "-out", "ca.crt",
            "-subj", "/CN=Revocation Test CA")
    return Authority(d)


def upload(gw: Node, d: Path) -> str:
    r = gw.call("POST", "/ca_certificates", json={"cert": (d / "ca.crt").read_text()})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def routes(gw: Node, up: int, ca: str, prefix: str) -> dict[str, str]:
    return {mode: protect(gw, up, f"{prefix}-{mode.lower()}", {
        "ca_certificates": [ca], "skip_consumer_lookup": True,
        "revocation_check_mode": mode, "http_timeout": 3000}) for mode in
        ("IGNORE_CA_ERROR", "STRICT", "SKIP")}


def test_ocsp_and_crl_distribution_points(gw: Node, up: int, tmp_path: Path) -> None:
    authority = new_ca(tmp_path)
    port, dead = free_port(), free_port()
    ocsp, cdp = f"http://127.0.0.1:{port}/ocsp", f"http://127.0.0.1:{port}/ca.crl"
    authority.issue("good", ocsp=ocsp)
    authority.issue("revoked", ocsp=ocsp, revoked=True)
    authority.issue("unreachable", ocsp=f"http://127.0.0.1:{dead}/ocsp")
    authority.issue("crl-revoked", crl=cdp, revoked=True)
    authority.issue("crl-good", crl=cdp)
    authority.gencrl()
    paths = routes(gw, up, upload(gw, tmp_path), "ocsp")
    ignore, strict, skip = paths["IGNORE_CA_ERROR"], paths["STRICT"], paths["SKIP"]
    with serve(authority, port):
        eventually(gw, tmp_path, ignore, 200, *cert("good"))
        assert request(gw, tmp_path, strict, *cert("good"))[0] == 200
        assert request(gw, tmp_path, ignore, *cert("good"))[0] == 200
        assert authority.ocsp_requests == 1       # cached: one query per certificate
        assert request(gw, tmp_path, ignore, *cert("revoked")) == (401, FAILED)
        assert request(gw, tmp_path, strict, *cert("revoked")) == (401, FAILED)
        assert request(gw, tmp_path, skip, *cert("revoked"))[0] == 200
        assert authority.ocsp_requests == 2
        # the responder is down: IGNORE_CA_ERROR lets the client in, STRICT does not, and
        # the failure is not cached
        assert request(gw, tmp_path, ignore, *cert("unreachable"))[0] == 200
        assert request(gw, tmp_path, strict, *cert("unreachable")) == (401, FAILED)
        # the CRL from the distribution point (seed 003's openssl ca -gencrl)
        assert request(gw, tmp_path, ignore, *cert("crl-revoked")) == (401, FAILED)
        assert request(gw, tmp_path, strict, *cert("crl-good"))[0] == 200
    # answers are cached until nextUpdate / cert_cache_ttl: the responder may go away
    assert request(gw, tmp_path, strict, *cert("good"))[0] == 200
    assert request(gw, tmp_path, strict, *cert("crl-revoked")) == (401, FAILED)


def test_uploaded_crl_revokes_seed_003_client(gw: Node, up: int, pki: Pki,
                                              tmp_path: Path) -> None:
    for name in ("ca.crt", "ca.key", "client.crt", "client.key"):
        shutil.copy(pki.dir / "s003" / name, tmp_path / name)
    authority = Authority(tmp_path)
    authority.issue("second")
    ca = upload(gw, tmp_path)
    paths = routes(gw, up, ca, "uploaded")
    ignore, strict = paths["IGNORE_CA_ERROR"], paths["STRICT"]
    eventually(gw, tmp_path, ignore, 200, *cert("client"))
    # no revocation information at all: STRICT refuses, as Kong does
    assert request(gw, tmp_path, strict, *cert("second")) == (401, FAILED)
    client = x509.load_pem_x509_certificate((tmp_path / "client.crt").read_bytes())
    authority.record(client.serial_number, "api-client", client.not_valid_after_utc, True)
    authority.gencrl()
    port = gw.running.admin.rsplit(":", 1)[1]
    code, body = shell(f'''curl -X POST http://localhost:{port}/ca_certificates/{ca}/crl \\
--data "crl=$(cat ca.crl)"''', tmp_path)
    assert code == 201, body
    assert eventually(gw, tmp_path, ignore, 401, *cert("client")) == FAILED
    # a fresh uploaded CRL that does not list a certificate is an answer: STRICT lets it in
    assert request(gw, tmp_path, strict, *cert("second"))[0] == 200
    code, _ = shell(f"curl -X DELETE http://localhost:{port}/ca_certificates/{ca}/crl",
                    tmp_path)
    assert code == 204
    eventually(gw, tmp_path, ignore, 200, *cert("client"))


