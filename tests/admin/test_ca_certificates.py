"""ca_certificates: CA checks, digest, and the references that protect a CA from deletion."""

from __future__ import annotations

import hashlib
import ssl
import subprocess

import httpx
import pytest

from gateway.tls.client import ClientProfile, client_context
from tests.pki import Pki


def der_sha256(path: str) -> str:
    der = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("ca", ["s003/ca.crt", "s001/rootCA.pem"])
async def test_seed_cas_accepted_with_digest(admin: httpx.AsyncClient, pki: Pki,
                                             ca: str) -> None:
    r = await admin.post("/ca_certificates", json={"cert": pki.read(ca),
                                                   "cert_digest": "client-supplied"})
    assert r.status_code == 201, r.text
    assert r.json()["cert_digest"] == der_sha256(pki.path(ca))
    assert set(r.json()) == {"id", "created_at", "updated_at", "cert", "cert_digest", "tags"}


@pytest.mark.parametrize(("cert", "message"), [
    ("s003/client.crt", 'certificate does not appear to be a CA because it is missing the "CA" '
                        "basic constraint"),
    ("s001/client.crt", 'certificate does not appear to be a CA because it is missing the "CA" '
                        "basic constraint"),
    ("s003/expired_ca.crt", 'certificate expired, "Not After" time is in the past'),
    ("s003/chain.pem", "please submit only one certificate at a time"),
])
async def test_rejected_cas_write_nothing(admin: httpx.AsyncClient, pki: Pki, cert: str,
                                          message: str) -> None:
    r = await admin.post("/ca_certificates", json={"cert": pki.read(cert)})
    assert r.status_code == 400
    assert r.json() == {"code": 2, "name": "schema violation",
                        "message": f"schema violation ({message})",
                        "fields": {"@entity": [message]}}
    assert (await admin.get("/ca_certificates")).json()["data"] == []


async def test_garbage_and_duplicate(admin: httpx.AsyncClient, pki: Pki) -> None:
    r = await admin.post("/ca_certificates", data={"cert": "not a certificate"})
    assert r.status_code == 400 and r.json()["fields"]["cert"].startswith("invalid certificate")
    first = await admin.post("/ca_certificates", json={"cert": pki.read("s003/ca.crt")})
    assert first.status_code == 201
    r = await admin.post("/ca_certificates", json={"cert": pki.read("s003/ca.crt")})
    assert r.status_code == 409
    digest = first.json()["cert_digest"]
    assert r.json()["message"] == f"UNIQUE violation detected on '{{cert_digest=\"{digest}\"}}'"


async def test_ca_keys_are_ids_only(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/ca_certificates/my-ca")
    assert r.status_code == 400
    assert r.json() == {"code": 1, "name": "invalid primary key",
                        "message": "invalid primary key: '{id=\"expected a valid UUID\"}'",
                        "fields": {"id": "expected a valid UUID"}}


async def test_delete_referenced_by_service(admin: httpx.AsyncClient, pki: Pki) -> None:
    ca = (await admin.post("/ca_certificates", json={"cert": pki.read("s003/ca.crt")})).json()
    svc = (await admin.post("/services", data={"name": "up", "url": "https://up.test",
                                               "tls_verify": "true",  # upper case: same id
                                               "ca_certificates[]": ca["id"].upper()})).json()
    assert svc["ca_certificates"] == [ca["id"]] and svc["tls_verify"] is True
    r = await admin.delete(f"/ca_certificates/{ca['id']}")
    assert r.status_code == 400
    assert r.json() == {"code": 19, "name": "referenced by others",
                        "message": f"ca certificate {ca['id']} is still referenced by services "
                                   f"(id = {svc['id']})"}
    assert (await admin.get(f"/ca_certificates/{ca['id']}")).status_code == 200
    await admin.patch("/services/up", json={"ca_certificates": None})
    assert (await admin.delete(f"/ca_certificates/{ca['id']}")).status_code == 204


async def test_delete_referenced_by_plugin(admin: httpx.AsyncClient, pki: Pki) -> None:
    ca = (await admin.post("/ca_certificates", json={"cert": pki.read("s003/ca.crt")})).json()
    plugin = (await admin.post("/plugins", data={"name": "mtls-auth",
                                                 "config.ca_certificates": ca["id"]})).json()
    r = await admin.delete(f"/ca_certificates/{ca['id']}")
    assert r.status_code == 400
    assert r.json()["message"] == (f"ca certificate {ca['id']} is still referenced by plugins "
                                   f"(id = {plugin['id']})")


async def test_a_ca_openssl_cannot_read_is_rejected(admin: httpx.AsyncClient,
                                                    pki: Pki) -> None:
    # cryptography reads a PEM whose BEGIN line is indented (pasted from YAML); OpenSSL
    # does not, so every service trusting it failed the snapshot build (a frozen config)
    indented = "  " + pki.read("s003/ca.crt")
    r = await admin.post("/ca_certificates", json={"cert": indented})
    assert r.status_code == 400, r.text
    assert r.json()["fields"]["cert"].startswith("invalid certificate: OpenSSL cannot use it")
    assert (await admin.get("/ca_certificates")).json()["data"] == []
    with pytest.raises(ssl.SSLError):
        client_context(ClientProfile(ca_pem=indented))
