"""certificates and snis: real certificates made as the seeds make them."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from gateway.tls.client import ClientProfile, client_context
from tests.pki import Pki, rsa_key_pem, sha1_signed_pair, weak_rsa_pair


async def count(admin: httpx.AsyncClient, path: str) -> int:
    return len((await admin.get(path)).json()["data"])


async def test_seed_certificates_are_accepted(admin: httpx.AsyncClient, pki: Pki) -> None:
    # seed 003: a v1 server certificate from `openssl x509 -req`
    r = await admin.post("/certificates", json={"cert": pki.read("s003/server.crt"),
                                                "key": pki.read("s003/server.key")})
    assert r.status_code == 201, r.text
    assert r.json()["snis"] == [] and r.json()["cert_alt"] is None
    # seed 001: the v1 client certificate (made with `-extensions client`, no -extfile)
    r = await admin.post("/certificates", json={"cert": pki.read("s001/client.crt"),
                                                "key": pki.read("s001/client.key")})
    assert r.status_code == 201, r.text
    # seed 000: KrakenD's self-signed localhost certificate
    r = await admin.post("/certificates", json={"cert": pki.read("s003/cert.pem"),
                                                "key": pki.read("s003/key.pem")})
    assert r.status_code == 201, r.text


async def test_curl_data_form_with_raw_pem(admin: httpx.AsyncClient, pki: Pki) -> None:
    """`curl --data "cert=$(cat server.crt)"` sends the PEM unencoded: its '+' become spaces."""
    body = "cert=" + pki.read("s003/server.crt") + "&key=" + pki.read("s003/server.key") + \
        "&snis[]=seed.test"
    assert "+" in body
    r = await admin.post("/certificates", content=body,
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text
    assert r.json()["cert"].strip() == pki.read("s003/server.crt").strip()
    assert r.json()["snis"] == ["seed.test"]


async def test_multipart_file_upload(admin: httpx.AsyncClient, pki: Pki) -> None:
    files = {"cert": ("server.crt", pki.read("s003/server.crt")),
             "key": ("server.key", pki.read("s003/server.key"))}
    r = await admin.post("/certificates", files=files, data={"snis[]": "upload.test"})
    assert r.status_code == 201, r.text
    assert r.json()["snis"] == ["upload.test"]


@pytest.mark.parametrize(("cert", "key", "field", "prefix"), [
    ("garbage", "s003/server.key", "cert", "invalid certificate: "),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "s003/server.key",
     "cert", "invalid certificate: "),
    ("s003/server.crt", "not a key", "key", "invalid key: "),
])
async def test_bad_pem_is_rejected(admin: httpx.AsyncClient, pki: Pki, cert: str, key: str,
                                   field: str, prefix: str) -> None:
    cert_pem = pki.read(cert) if cert.startswith("s00") else cert
    key_pem = pki.read(key) if key.startswith("s00") else key
    r = await admin.post("/certificates", json={"cert": cert_pem, "key": key_pem})
    assert r.status_code == 400
    assert r.json()["code"] == 2 and r.json()["fields"][field].startswith(prefix)
    assert await count(admin, "/certificates") == 0


async def test_key_mismatch_writes_nothing(admin: httpx.AsyncClient, pki: Pki) -> None:
    r = await admin.post("/certificates", json={"cert": pki.read("s003/server.crt"),
                                                "key": pki.read("s003/client.key"),
                                                "snis": ["mismatch.test"]})
    assert r.status_code == 400
    assert r.json() == {"code": 2, "name": "schema violation",
                        "message": "schema violation (certificate does not match key)",
                        "fields": {"@entity": ["certificate does not match key"]}}
    assert await count(admin, "/certificates") == 0
    assert await count(admin, "/snis") == 0


async def test_encrypted_key_has_a_clear_message(admin: httpx.AsyncClient, pki: Pki) -> None:
    r = await admin.post("/certificates", json={"cert": pki.read("s001/rootCA.pem"),
                                                "key": pki.read("s001/rootCA.protected.key")})
    assert r.status_code == 400
    assert "encrypted" in r.json()["fields"]["key"]


async def test_required_fields(admin: httpx.AsyncClient) -> None:
    r = await admin.put(f"/certificates/{uuid.uuid4()}", json={})
    assert r.json() == {"code": 2, "name": "schema violation",
                        "message": "2 schema violations (cert: required field missing; "
                                   "key: required field missing)",
                        "fields": {"cert": "required field missing",
                                   "key": "required field missing"}}


async def test_alt_certificate(admin: httpx.AsyncClient, pki: Pki) -> None:
    rsa = {"cert": pki.read("s003/rsa.crt"), "key": pki.read("s003/rsa.key")}
    r = await admin.post("/certificates", json={**rsa, "cert_alt": pki.read("s003/ec.crt"),
                                                "key_alt": pki.read("s003/ec.key")})
    assert r.status_code == 201, r.text
    r = await admin.post("/certificates", json={**rsa, "cert_alt": pki.read("s003/ec.crt")})
    assert r.json()["fields"] == {"@entity": [
        "all or none of these fields must be set: 'cert_alt', 'key_alt'"]}
    r = await admin.post("/certificates", json={**rsa, "cert_alt": pki.read("s003/server.crt"),
                                                "key_alt": pki.read("s003/server.key")})
    assert r.json()["fields"]["@entity"] == [
        "certificate and alternative certificate need to have different type (e.g. RSA and "
        "ECDSA), the provided certificates were both of the same type"]
    r = await admin.post("/certificates", json={**rsa, "cert_alt": pki.read("s003/ec.crt"),
                                                "key_alt": rsa_key_pem()})
    assert r.json()["fields"]["@entity"] == ["alternative certificate does not match key"]


async def test_snis_shorthand_sorted_and_owned(admin: httpx.AsyncClient, pki: Pki) -> None:
    pair = {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key")}
    r = await admin.post("/certificates", json={**pair, "snis": ["b.test", "a.test"]})
    assert r.status_code == 201 and r.json()["snis"] == ["a.test", "b.test"]
    cert_id = r.json()["id"]
    snis = (await admin.get("/snis")).json()["data"]
    assert sorted(s["name"] for s in snis) == ["a.test", "b.test"]
    assert all(s["certificate"] == {"id": cert_id} for s in snis)

    r = await admin.post("/certificates", json={**pair, "snis": ["c.test", "c.test"]})
    assert r.status_code == 400
    assert r.json()["message"] == "schema violation (snis: c.test is duplicated)"
    r = await admin.post("/certificates", json={**pair, "snis": ["a.test"]})
    assert r.status_code == 400
    assert r.json()["message"] == (f"schema violation (snis: a.test already associated with "
                                   f"existing certificate '{cert_id}')")
    assert await count(admin, "/certificates") == 1


async def test_certificate_by_sni_name(admin: httpx.AsyncClient, pki: Pki) -> None:
    pair = {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key")}
    cert = (await admin.post("/certificates", json={**pair, "snis": ["a.test"]})).json()
    assert (await admin.get("/certificates/a.test")).json()["id"] == cert["id"]
    r = await admin.get("/certificates/unknown.test")
    assert r.status_code == 404 and r.json() == {"message": "SNI not found"}
    # PUT by an unknown name creates a certificate carrying that name
    r = await admin.put("/certificates/new.test", json=pair)
    assert r.status_code == 200 and r.json()["snis"] == ["new.test"]
    assert r.json()["id"] != cert["id"]


async def test_patch_and_put_snis(admin: httpx.AsyncClient, pki: Pki) -> None:
    pair = {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key")}
    cert = (await admin.post("/certificates", json={**pair, "snis": ["a.test"]})).json()
    path = f"/certificates/{cert['id']}"
    r = await admin.patch(path, json={"tags": ["t"]})
    assert r.json()["snis"] == ["a.test"]  # PATCH without snis keeps them
    r = await admin.patch(path, json={"snis": ["x.test", "y.test"]})
    assert r.json()["snis"] == ["x.test", "y.test"]
    r = await admin.patch(path, data={"snis": ""})  # form `snis=` removes them
    assert r.json()["snis"] == []
    await admin.patch(path, json={"snis": ["z.test"]})
    r = await admin.put(path, json=pair)  # PUT without snis removes them
    assert r.status_code == 200 and r.json()["snis"] == []
    assert await count(admin, "/snis") == 0


async def test_form_snis_comma_list(admin: httpx.AsyncClient, pki: Pki) -> None:
    r = await admin.post("/certificates", data={"cert": pki.read("s003/server.crt"),
                                                "key": pki.read("s003/server.key"),
                                                "snis": "a.test,b.test"})
    assert r.status_code == 201 and r.json()["snis"] == ["a.test", "b.test"]


async def test_delete_certificate_removes_its_snis(admin: httpx.AsyncClient, pki: Pki) -> None:
    pair = {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key")}
    cert = (await admin.post("/certificates", json={**pair, "snis": ["a.test", "b.test"]})
            ).json()
    assert (await admin.delete(f"/certificates/{cert['id']}")).status_code == 204
    assert await count(admin, "/snis") == 0
    assert (await admin.get("/certificates/a.test")).status_code == 404


async def test_delete_certificate_used_by_a_service(admin: httpx.AsyncClient, pki: Pki
                                                    ) -> None:
    pair = {"cert": pki.read("s003/client.crt"), "key": pki.read("s003/client.key")}
    cert = (await admin.post("/certificates", json=pair)).json()
    r = await admin.post("/services", data={"name": "up", "url": "https://up.test",
                                            "client_certificate.id": cert["id"]})
    assert r.status_code == 201 and r.json()["client_certificate"] == {"id": cert["id"]}
    r = await admin.delete(f"/certificates/{cert['id']}")
    assert r.status_code == 400
    assert r.json()["message"] == ("an existing 'services' entity references this "
                                   "'certificates' entity")
    services = (await admin.get(f"/certificates/{cert['id']}/services")).json()["data"]
    assert [s["name"] for s in services] == ["up"]


async def test_snis_entity(admin: httpx.AsyncClient, pki: Pki) -> None:
    pair = {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key")}
    cert = (await admin.post("/certificates", json=pair)).json()
    r = await admin.post("/snis", data={"name": "a.test", "certificate.id": cert["id"]})
    assert r.status_code == 201 and r.json()["certificate"] == {"id": cert["id"]}
    r = await admin.post("/snis", json={"name": "a.test", "certificate": {"id": cert["id"]}})
    assert r.status_code == 409
    assert r.json()["message"] == "UNIQUE violation detected on '{name=\"a.test\"}'"
    r = await admin.post(f"/certificates/{cert['id']}/snis", json={"name": "*.wild.test"})
    assert r.status_code == 201
    r = await admin.post(f"/certificates/{cert['id']}/snis", json={"name": "a.*.test"})
    assert r.json()["fields"] == {"name": "wildcard must be leftmost or rightmost character"}
    assert (await admin.get("/snis/a.test")).json()["name"] == "a.test"
    assert (await admin.get("/snis/a.test/certificate")).status_code == 404
    listing = (await admin.get(f"/certificates/{quote('a.test')}/snis")).json()["data"]
    assert sorted(s["name"] for s in listing) == ["*.wild.test", "a.test"]
    assert (await admin.get(f"/certificates/{cert['id']}")).json()["snis"] == [
        "*.wild.test", "a.test"]


@pytest.mark.parametrize("snis", [5, {"a": 1}])
async def test_put_by_sni_needs_an_array(admin: httpx.AsyncClient, pki: Pki,
                                         snis: object) -> None:
    r = await admin.put("/certificates/put.test", json={"cert": pki.read("s003/server.crt"),
                                                        "key": pki.read("s003/server.key"),
                                                        "snis": snis})
    assert r.status_code == 400 and r.json()["code"] == 2, r.text
    assert "snis" in r.json()["fields"]
    assert await count(admin, "/certificates") == 0
    r = await admin.put("/certificates/put.test", json={"cert": pki.read("s003/server.crt"),
                                                        "key": pki.read("s003/server.key"),
                                                        "snis": "x.test"})  # the shorthand
    assert r.status_code == 200 and sorted(r.json()["snis"]) == ["put.test", "x.test"], r.text


# ------------------------------------- nothing OpenSSL cannot load is stored (it froze reloads)


@pytest.mark.parametrize("reason", ["ee key too small", "ca md too weak", "PEM lib"])
async def test_pairs_openssl_refuses_are_rejected(admin: httpx.AsyncClient, pki: Pki,
                                                  tmp_path: Path, reason: str) -> None:
    makers: dict[str, Callable[[], tuple[str, str]]] = {
        "ee key too small": weak_rsa_pair,
        "ca md too weak": lambda: sha1_signed_pair(tmp_path),
        # an indented BEGIN line: cryptography reads it, OpenSSL does not
        "PEM lib": lambda: ("  " + pki.read("s003/server.crt"), pki.read("s003/server.key"))}
    cert, key = makers[reason]()
    r = await admin.post("/certificates", json={"cert": cert, "key": key,
                                                "snis": ["weak.test"]})
    assert r.status_code == 400, r.text
    message = r.json()["fields"]["cert"]
    assert message.startswith("invalid certificate: OpenSSL cannot use it: ") and \
        reason in message, message
    assert await count(admin, "/certificates") == 0 and await count(admin, "/snis") == 0
    # as a service's client certificate this pair failed every snapshot build after it
    with pytest.raises(ssl.SSLError):
        client_context(ClientProfile(cert=cert, key=key))


async def test_an_alternative_pair_openssl_refuses_is_rejected(admin: httpx.AsyncClient,
                                                               pki: Pki) -> None:
    cert, key = weak_rsa_pair()
    r = await admin.post("/certificates", json={
        "cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key"),
        "cert_alt": cert, "key_alt": key})
    assert r.status_code == 400, r.text
    assert "ee key too small" in r.json()["fields"]["cert_alt"]


async def test_updating_to_a_pair_openssl_refuses_changes_nothing(admin: httpx.AsyncClient,
                                                                  pki: Pki) -> None:
    good = {"cert": pki.read("s003/server.crt"), "key": pki.read("s003/server.key")}
    created = (await admin.post("/certificates", json=good)).json()
    cert, key = weak_rsa_pair()
    r = await admin.patch(f"/certificates/{created['id']}", json={"cert": cert, "key": key})
    assert r.status_code == 400
    assert (await admin.get(f"/certificates/{created['id']}")).json()["cert"] == good["cert"]
