"""upstreams (health-check defaults, hashing rules) and targets under their upstream."""

from __future__ import annotations

import httpx
import pytest


async def test_upstream_defaults(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/upstreams", data={"name": "backend.internal"})
    assert r.status_code == 201
    body = r.json()
    assert body["algorithm"] == "round-robin" and body["hash_on"] == "none"
    assert body["slots"] == 10000 and body["hash_on_cookie_path"] == "/"
    checks = body["healthchecks"]
    assert checks["threshold"] == 0
    assert checks["active"]["healthy"] == {"interval": 0, "http_statuses": [200, 302],
                                           "successes": 0}
    assert checks["active"]["unhealthy"]["http_statuses"] == [429, 404, 500, 501, 502, 503,
                                                             504, 505]
    assert checks["active"]["https_verify_certificate"] is True
    assert checks["passive"]["unhealthy"] == {"http_statuses": [429, 500, 503],
                                              "tcp_failures": 0, "timeouts": 0,
                                              "http_failures": 0}


@pytest.mark.parametrize(("body", "fields"), [
    ({"name": "10.0.0.1"}, {"name": "Invalid name ('10.0.0.1'); no ip addresses allowed"}),
    ({"name": "svc:80"}, {"name": "Invalid name ('svc:80'); no port allowed"}),
    ({"name": "u", "hash_on": "header"},
     {"@entity": ["failed conditional validation given value of field 'hash_on'"],
      "hash_on_header": "required field missing"}),
    ({"name": "u", "slots": 5}, {"slots": "value should be between 10 and 65536"}),
    ({"name": "u", "healthchecks": {"active": {"concurrency": 0.5}}},
     {"healthchecks": {"active": {"concurrency": "expected an integer"}}}),
    ({"name": "u", "healthchecks": {"active": {"http_path": "ovo"}}},
     {"healthchecks": {"active": {"http_path": "should start with: /"}}}),
    # a probe header the HTTP client refuses to send crashed the probe task for good
    ({"name": "u", "healthchecks": {"active": {"headers": {"x-a": ["ok", "a\r\nX-Injected: 1"]}}}},
     {"healthchecks": {"active": {"headers": [
         None, "invalid header value: control characters are not allowed"]}}}),
])
async def test_upstream_rules(admin: httpx.AsyncClient, body: dict[str, object],
                              fields: dict[str, object]) -> None:
    r = await admin.post("/upstreams", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["fields"] == fields


@pytest.mark.parametrize(("body", "algorithm", "hash_on"), [
    ({"algorithm": "least-connections", "hash_on": "ip"}, "least-connections", "none"),
    ({"algorithm": "round-robin", "hash_on": "ip"}, "consistent-hashing", "ip"),
    ({"algorithm": "consistent-hashing", "hash_on": "none"}, "round-robin", "none"),
])
async def test_hashing_shorthands(admin: httpx.AsyncClient, body: dict[str, object],
                                  algorithm: str, hash_on: str) -> None:
    r = await admin.post("/upstreams", json={"name": "u", **body})
    assert r.status_code == 201, r.text
    assert (r.json()["algorithm"], r.json()["hash_on"]) == (algorithm, hash_on)


async def test_nested_healthcheck_patch_merges(admin: httpx.AsyncClient) -> None:
    await admin.post("/upstreams", json={"name": "u"})
    r = await admin.patch("/upstreams/u", data={"healthchecks.active.healthy.interval": "5"})
    assert r.status_code == 200, r.text
    active = r.json()["healthchecks"]["active"]
    assert active["healthy"]["interval"] == 5 and active["healthy"]["successes"] == 0
    assert active["unhealthy"]["interval"] == 0


async def test_targets(admin: httpx.AsyncClient) -> None:
    upstream = (await admin.post("/upstreams", json={"name": "u"})).json()
    r = await admin.post("/upstreams/u/targets", data={"target": "10.0.0.1"})
    assert r.status_code == 201
    target = r.json()
    assert target["target"] == "10.0.0.1:8000" and target["weight"] == 100
    assert target["upstream"] == {"id": upstream["id"]}
    assert isinstance(target["created_at"], float)
    r = await admin.post("/upstreams/u/targets", json={"target": "10.0.0.1:8000"})
    assert r.status_code == 409
    assert r.json()["message"] == "UNIQUE violation detected on '{target=\"10.0.0.1:8000\"}'"
    r = await admin.post("/upstreams/u/targets", json={"target": "bad host"})
    assert r.json()["fields"] == {
        "target": "Invalid target ('bad host'); not a valid hostname or ip address"}
    r = await admin.post("/upstreams/u/targets", json={"target": "b.internal:80",
                                                       "weight": 70000})
    assert r.json()["fields"] == {"weight": "value should be between 0 and 65535"}
    await admin.post("/upstreams/u/targets", json={"target": "b.internal:80", "weight": 0})

    listing = (await admin.get("/upstreams/u/targets")).json()["data"]
    assert sorted(t["target"] for t in listing) == ["10.0.0.1:8000", "b.internal:80"]
    assert len((await admin.get("/upstreams/u/targets/all")).json()["data"]) == 2
    assert (await admin.get("/upstreams/u/targets/10.0.0.1:8000")).json()["id"] == target["id"]
    r = await admin.put("/upstreams/u/targets/10.0.0.1:8000", json={"weight": 5})
    assert r.status_code == 200 and r.json()["weight"] == 5 and r.json()["id"] == target["id"]
    assert (await admin.put("/upstreams/u/targets/9.9.9.9:1", json={"weight": 5})
            ).status_code == 404
    other = (await admin.post("/upstreams", json={"name": "other"})).json()
    assert (await admin.get(f"/upstreams/{other['id']}/targets/{target['id']}")
            ).status_code == 404
    assert (await admin.delete("/upstreams/u/targets/10.0.0.1:8000")).status_code == 204
    assert (await admin.delete("/upstreams/u")).status_code == 204
    assert (await admin.get("/upstreams/u/targets")).status_code == 404
