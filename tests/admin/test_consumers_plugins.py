"""consumers, plugins and the credentials plugins ship (acls, mtls_auth_credentials)."""

from __future__ import annotations

import httpx
import pytest

from tests.pki import Pki


async def test_consumers(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/consumers", data={"username": "trusted-partner"})
    assert r.status_code == 201
    assert set(r.json()) == {"id", "created_at", "updated_at", "username", "custom_id", "tags"}
    r = await admin.post("/consumers", json={})
    assert r.json()["fields"] == {"@entity": [
        "at least one of these fields must be non-empty: 'custom_id', 'username'"]}
    await admin.post("/consumers", json={"custom_id": "c-1"})
    r = await admin.post("/consumers", json={"custom_id": "c-1"})
    assert r.status_code == 409
    assert r.json()["message"] == "UNIQUE violation detected on '{custom_id=\"c-1\"}'"
    r = await admin.get("/consumers", params={"custom_id": "c-1"})
    assert r.json()["next"] is None and [c["custom_id"] for c in r.json()["data"]] == ["c-1"]
    assert (await admin.get("/consumers", params={"custom_id": "none"})).json() == {
        "data": [], "next": None}
    r = await admin.get("/consumers", params={"custom_id": ""})
    assert r.status_code == 400 and r.json() == {"message": "custom_id must be an unempty string"}
    assert (await admin.get("/consumers/trusted-partner")).json()["username"] == \
        "trusted-partner"


async def test_unknown_plugin(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/plugins", data={"name": "foo"})
    assert r.status_code == 400
    assert r.json() == {"code": 2, "name": "schema violation",
                        "message": "schema violation (name: plugin 'foo' not enabled; add it to "
                                   "the 'plugins' configuration property)",
                        "fields": {"name": "plugin 'foo' not enabled; add it to the 'plugins' "
                                           "configuration property"}}
    assert (await admin.post("/plugins", json={})).json()["fields"] == {
        "name": "required field missing"}


async def test_mtls_auth_config_from_form(admin: httpx.AsyncClient, pki: Pki) -> None:
    ca = (await admin.post("/ca_certificates", json={"cert": pki.read("s003/ca.crt")})).json()
    r = await admin.post("/plugins", data={"name": "mtls-auth"})
    assert r.json()["message"] == "schema violation (config.ca_certificates: required field " \
                                  "missing)"
    assert r.json()["fields"] == {"config": {"ca_certificates": "required field missing"}}
    r = await admin.post("/plugins", data={"name": "mtls-auth",
                                           "config.ca_certificates": ca["id"],
                                           "config.cache_ttl": "30",
                                           "config[skip_consumer_lookup]": "true",
                                           "config.revocation_check_mode": "STRICT"})
    assert r.status_code == 201, r.text
    config = r.json()["config"]
    assert config["ca_certificates"] == [ca["id"]] and config["cache_ttl"] == 30
    assert config["skip_consumer_lookup"] is True
    assert config["revocation_check_mode"] == "STRICT"
    assert config["consumer_by"] == ["username", "custom_id"]  # defaults filled
    assert r.json()["protocols"] == ["grpc", "grpcs", "http", "https"]
    assert r.json()["enabled"] is True
    # PATCH merges config field by field, and form values are typed by the stored plugin
    r = await admin.patch(f"/plugins/{r.json()['id']}", data={"config.cache_ttl": "5"})
    assert r.status_code == 200, r.text
    assert r.json()["config"]["cache_ttl"] == 5
    assert r.json()["config"]["revocation_check_mode"] == "STRICT"


async def test_plugin_config_errors(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/plugins", json={"name": "mtls-auth", "config": {
        "ca_certificates": ["nope"], "http_proxy_host": "proxy.test", "bogus": 1}})
    assert r.status_code == 400
    fields = r.json()["fields"]["config"]
    assert fields["ca_certificates"] == ["expected a valid UUID"]
    assert fields["bogus"] == "unknown field"
    r = await admin.post("/plugins", json={"name": "acl", "config": {}})
    assert r.json()["fields"] == {"@entity": [
        "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]}
    r = await admin.post("/plugins", json={"name": "acl", "config": {"allow": ["a"],
                                                                     "deny": ["b"]}})
    assert r.json()["fields"] == {"@entity": [
        "exactly one of these fields must be non-empty: 'config.allow', 'config.deny'"]}


async def test_plugin_scope_rules(admin: httpx.AsyncClient) -> None:
    consumer = (await admin.post("/consumers", json={"username": "alice"})).json()
    r = await admin.post("/consumers/alice/plugins", json={"name": "acl",
                                                           "config": {"allow": ["a"]}})
    assert r.status_code == 400
    assert r.json()["fields"] == {"consumer": "value must be null"}
    await admin.post("/services", json={"name": "s", "host": "h"})
    body = {"name": "acl", "config": {"allow": ["a"]}}
    first = await admin.post("/services/s/plugins", json=body)
    assert first.status_code == 201 and first.json()["service"]["id"]
    r = await admin.post("/services/s/plugins", json=body)
    assert r.status_code == 409
    sid = first.json()["service"]["id"]
    assert r.json()["message"] == ("UNIQUE violation detected on '{consumer=null,name=\"acl\","
                                   f"route=null,service={{id=\"{sid}\"}}}}'")
    assert r.json()["fields"] == {"consumer": None, "name": "acl", "route": None,
                                  "service": {"id": sid}}
    assert consumer["id"]


async def test_plugin_protocols_must_match_route(admin: httpx.AsyncClient) -> None:
    route = (await admin.post("/routes", json={"protocols": ["tcp"],
                                               "destinations": [{"port": 80}]})).json()
    r = await admin.post(f"/routes/{route['id']}/plugins", json={"name": "acl",
                                                                 "config": {"allow": ["a"]}})
    assert r.status_code == 400
    assert r.json()["fields"] == {"protocols": "must match the associated route's protocols"}


async def test_plugin_instance_name_and_helpers(admin: httpx.AsyncClient) -> None:
    r = await admin.put("/plugins/my-acl", json={"name": "acl", "config": {"deny": ["x"]}})
    assert r.status_code == 200 and r.json()["instance_name"] == "my-acl"
    assert (await admin.get("/plugins/my-acl")).json()["config"]["deny"] == ["x"]
    enabled = (await admin.get("/plugins/enabled")).json()["enabled_plugins"]
    assert sorted(enabled) == ["acl", "mtls-auth"]
    schema = (await admin.get("/plugins/schema/mtls-auth")).json()
    names = [next(iter(f)) for f in schema["fields"]]
    assert "ca_certificates" in names and "revocation_check_mode" in names
    r = await admin.get("/plugins/schema/nope")
    assert r.status_code == 404 and r.json() == {"message": "No plugin named 'nope'"}


async def test_credentials_and_cascades(admin: httpx.AsyncClient, pki: Pki) -> None:
    await admin.post("/consumers", data={"username": "trusted-partner"})
    r = await admin.post("/consumers/trusted-partner/mtls-auth",
                         data={"subject_name": "CN=api-client"})
    assert r.status_code == 201, r.text
    cred = r.json()
    assert set(cred) == {"id", "created_at", "consumer", "subject_name", "ca_certificate",
                         "tags"}
    assert cred["ca_certificate"] is None
    r = await admin.post("/consumers/trusted-partner/mtls-auth",
                         data={"subject_name": "CN=api-client"})
    assert r.status_code == 409
    listing = (await admin.get("/consumers/trusted-partner/mtls-auth")).json()["data"]
    assert [c["id"] for c in listing] == [cred["id"]]
    assert (await admin.get(f"/mtls-auths/{cred['id']}/consumer")).json()["username"] == \
        "trusted-partner"

    r = await admin.post("/consumers/trusted-partner/acls", data={"group": "admins"})
    assert r.status_code == 201
    assert (await admin.get("/consumers/trusted-partner/acls/admins")).json()["group"] == \
        "admins"
    assert (await admin.post("/consumers/trusted-partner/acls",
                             data={"group": "admins"})).status_code == 409
    await admin.post("/consumers/trusted-partner/plugins",
                     json={"name": "mtls-auth", "config": {"ca_certificates": []}})

    assert (await admin.delete("/consumers/trusted-partner")).status_code == 204
    assert (await admin.get("/mtls_auth_credentials")).json()["data"] == []
    assert (await admin.get("/acls")).json()["data"] == []


@pytest.mark.parametrize("path", ["/targets", "/upstreams/u/targets/x/upstream"])
async def test_disabled_endpoints(admin: httpx.AsyncClient, path: str) -> None:
    assert (await admin.get(path)).status_code == 404


async def test_nul_characters(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/consumers", json={"username": "a\u0000b"})
    assert r.status_code == 400 and "NUL" in r.json()["fields"]["username"]
    r = await admin.get("/consumers?custom_id=a%00b")
    assert r.status_code == 200 and r.json()["data"] == []
