"""``/ca_certificates/{id}/crl``: upload (checked against its CA), read, replace, delete."""

from __future__ import annotations

import httpx
from cryptography import x509

from tests.pki import Pki, make_crl


async def upload_ca(admin: httpx.AsyncClient, pki: Pki, name: str) -> str:
    r = await admin.post("/ca_certificates", json={"cert": pki.read(name)})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def serial(pki: Pki) -> int:
    return x509.load_pem_x509_certificate(pki.read("s003/client.crt").encode()).serial_number


async def test_upload_read_replace_delete(admin: httpx.AsyncClient, pki: Pki) -> None:
    ca = await upload_ca(admin, pki, "s003/ca.crt")
    assert (await admin.get(f"/ca_certificates/{ca}/crl")).status_code == 404
    crl = make_crl(pki.read("s003/ca.crt"), pki.read("s003/ca.key"), [serial(pki)])
    r = await admin.post(f"/ca_certificates/{ca}/crl", data={"crl": crl})   # seed's --data
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ca_certificate"] == {"id": ca} and body["crl"] == crl
    assert body["revoked_count"] == 1 and body["next_update"] > body["last_update"]
    assert (await admin.get(f"/ca_certificates/{ca}/crl")).json()["id"] == body["id"]
    newer = make_crl(pki.read("s003/ca.crt"), pki.read("s003/ca.key"), [])
    r = await admin.post(f"/ca_certificates/{ca}/crl", json={"crl": newer})
    assert r.status_code == 200 and r.json()["id"] == body["id"]
    assert r.json()["revoked_count"] == 0
    assert (await admin.delete(f"/ca_certificates/{ca}/crl")).status_code == 204
    assert (await admin.get(f"/ca_certificates/{ca}/crl")).status_code == 404


async def test_bad_uploads_are_400_and_change_nothing(admin: httpx.AsyncClient,
                                                      pki: Pki) -> None:
    ca = await upload_ca(admin, pki, "s003/ca.crt")
    good = make_crl(pki.read("s003/ca.crt"), pki.read("s003/ca.key"), [1])
    assert (await admin.post(f"/ca_certificates/{ca}/crl", json={"crl": good})).status_code \
        == 201
    other = await upload_ca(admin, pki, "s001/rootCA.pem")
    foreign = make_crl(pki.read("s001/rootCA.pem"), pki.read("s001/rootCA.key"), [])
    expired = make_crl(pki.read("s003/ca.crt"), pki.read("s003/ca.key"), [], days=(-10, -1))
    for text, message in (
            ("", "required field missing"),
            ("not a crl", "invalid CRL: expected a PEM 'X509 CRL'"),
            (pki.read("s003/ca.crt"), "invalid CRL: expected a PEM 'X509 CRL'"),
            (foreign, "CRL is not signed by this CA certificate")):
        r = await admin.post(f"/ca_certificates/{ca}/crl", json={"crl": text})
        assert r.status_code == 400, text
        assert r.json() == {"code": 2, "name": "schema violation",
                            "message": f"schema violation (crl: {message})",
                            "fields": {"crl": message}}
    r = await admin.post(f"/ca_certificates/{ca}/crl", json={"crl": expired})
    assert r.status_code == 400 and r.json()["fields"]["crl"].startswith("CRL expired")
    assert (await admin.get(f"/ca_certificates/{ca}/crl")).json()["crl"] == good
    assert (await admin.post(f"/ca_certificates/{other}/crl",
                             json={"crl": foreign})).status_code == 201
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await admin.post(f"/ca_certificates/{missing}/crl",
                             json={"crl": good})).status_code == 404


async def test_deleting_the_ca_deletes_its_crl(admin: httpx.AsyncClient, pki: Pki) -> None:
    ca = await upload_ca(admin, pki, "s003/ca.crt")
    crl = make_crl(pki.read("s003/ca.crt"), pki.read("s003/ca.key"), [])
    assert (await admin.post(f"/ca_certificates/{ca}/crl", json={"crl": crl})).status_code \
        == 201
    assert (await admin.delete(f"/ca_certificates/{ca}")).status_code == 204
    ca = await upload_ca(admin, pki, "s003/ca.crt")
    assert (await admin.get(f"/ca_certificates/{ca}/crl")).status_code == 404
