"""routes: form encodings users' curl scripts use, per-protocol rules, foreign references."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gateway.router.regex import RegexError
from gateway.router.router import Router
from gateway.schema.build import build
from gateway.schema.entities.routes import ROUTES


@pytest.fixture
async def service(admin: httpx.AsyncClient) -> dict[str, object]:
    r = await admin.post("/services", data={"name": "secure-service",
                                            "url": "https://mockbin.org"})
    return dict(r.json())


@pytest.mark.parametrize("form", [
    "paths[]=/a&paths[]=/b",
    "paths[1]=/a&paths[2]=/b",
    "paths=/a&paths=/b",
    "paths%5B%5D=/a&paths%5B%5D=/b",
])
async def test_array_form_encodings(admin: httpx.AsyncClient, service: dict[str, object],
                                    form: str) -> None:
    r = await admin.post("/services/secure-service/routes", content=form,
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text
    assert r.json()["paths"] == ["/a", "/b"]
    assert r.json()["service"] == {"id": service["id"]}


async def test_single_value_and_maps(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/routes", data={"hosts": "example.com", "methods": "GET",
                                          "headers.x-version": "v1", "strip_path": "false",
                                          "regex_priority": "7"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["hosts"] == ["example.com"] and body["methods"] == ["GET"]
    assert body["headers"] == {"x-version": ["v1"]}
    assert body["strip_path"] is False and body["regex_priority"] == 7
    assert body["protocols"] == ["http", "https"] and body["service"] is None


async def test_empty_body_needs_a_matching_field(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/routes", json={})
    assert r.status_code == 400
    msg = "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is " \
          "'https'"
    assert r.json() == {"code": 2, "name": "schema violation",
                        "message": f"schema violation ({msg})", "fields": {"@entity": [msg]}}


async def test_unknown_protocol(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/routes", json={"methods": ["GET"], "protocols": ["foo", "http"]})
    assert r.status_code == 400
    assert r.json()["fields"] == {"protocols": [
        "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp, ws, wss"]}
    assert r.json()["message"].startswith("schema violation (protocols.1: expected one of:")


@pytest.mark.parametrize(("body", "fields"), [
    ({"protocols": ["http", "tcp"], "paths": ["/"]},
     {"protocols": "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', "
                   "'udp')"}),
    ({"protocols": ["http"], "snis": ["a.test"], "paths": ["/"]},
     {"@entity": ["'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or "
                  "'tls_passthrough'"], "snis": "length must be 0"}),
    ({"protocols": ["tcp"], "paths": ["/"], "destinations": [{"port": 80}]},
     {"paths": "cannot set 'paths' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or "
               "'udp'"}),
    ({"protocols": ["tls_passthrough"]},
     {"@entity": ["must set snis when 'protocols' is 'tls_passthrough'"]}),
    ({"protocols": ["grpc"], "paths": ["/"], "strip_path": True},
     {"strip_path": "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'"}),
    ({"paths": ["/a/../b"]},
     {"paths": ["non-normalized path, consider use '/b' instead"]}),
    ({"paths": ["/ok", "/a//b"]}, {"paths": [None, "must not have empty segments"]}),
    ({"hosts": ["*.example.*"]},
     {"hosts": ["invalid wildcard: must have at most one wildcard"]}),
    ({"headers": {"Host": ["x"]}},
     {"headers": "cannot contain 'host' header, which must be specified in the 'hosts' "
                 "attribute"}),
    ({"methods": ["get"]}, {"methods": ["invalid value: get"]}),
    ({"paths": ["/"], "https_redirect_status_code": 303},
     {"https_redirect_status_code": "expected one of: 426, 301, 302, 307, 308"}),
])
async def test_route_rules(admin: httpx.AsyncClient, body: dict[str, object],
                           fields: dict[str, object]) -> None:
    r = await admin.post("/routes", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["fields"] == fields


async def test_second_array_element_error_message(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/routes", json={"paths": ["/ok", "/a//b"]})
    assert r.json()["message"] == "schema violation (paths.2: must not have empty segments)"


async def test_grpc_defaults_strip_path_false(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/routes", json={"protocols": ["grpc"], "paths": ["/svc"]})
    assert r.status_code == 201 and r.json()["strip_path"] is False


async def test_stream_route(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/routes", json={"protocols": ["tls"], "snis": ["a.test"],
                                          "sources": [{"ip": "10.0.0.0/8"}]})
    assert r.status_code == 201, r.text
    assert r.json()["sources"] == [{"ip": "10.0.0.0/8", "port": None}]


async def test_foreign_reference_by_name_and_errors(admin: httpx.AsyncClient,
                                                    service: dict[str, object]) -> None:
    r = await admin.post("/routes", data={"paths[]": "/x", "service.name": "secure-service"})
    assert r.status_code == 201 and r.json()["service"] == {"id": service["id"]}
    r = await admin.post("/routes", data={"paths[]": "/x", "service.id": str(service["id"])})
    assert r.status_code == 201
    r = await admin.post("/routes", json={"methods": ["GET"],
                                          "service": {"name": "non-existing"}})
    assert r.status_code == 400
    assert r.json() == {
        "code": 13, "name": "foreign keys unresolved",
        "message": "foreign key unresolved (service.name: the foreign key cannot be resolved "
                   "with '{name=\"non-existing\"}' for an existing 'services' entity)",
        "fields": {"service": {"name": "the foreign key cannot be resolved with "
                                       "'{name=\"non-existing\"}' for an existing 'services' "
                                       "entity"}}}
    ghost = str(uuid.uuid4())
    r = await admin.post("/routes", json={"methods": ["GET"], "service": {"id": ghost}})
    assert r.status_code == 400
    msg = (f"the foreign key '{{id=\"{ghost}\"}}' does not reference an existing 'services' "
           "entity.")
    assert r.json() == {"code": 4, "name": "foreign key violation", "message": msg,
                        "fields": {"service": {"id": ghost}}}


async def test_nested_routes(admin: httpx.AsyncClient, service: dict[str, object]) -> None:
    r = await admin.post("/services/secure-service/routes",
                         data={"name": "secure-route", "paths[]": "/secure"})
    assert r.status_code == 201
    listing = (await admin.get("/services/secure-service/routes")).json()
    assert [x["name"] for x in listing["data"]] == ["secure-route"]
    assert (await admin.get("/services/secure-service/routes/secure-route")).status_code == 200
    other = (await admin.post("/routes", json={"name": "other", "paths": ["/o"]})).json()
    # a route that belongs to another service is not found through this one
    assert (await admin.get(f"/services/secure-service/routes/{other['id']}")).status_code \
        == 404
    assert (await admin.delete(f"/services/secure-service/routes/{other['id']}")).status_code \
        == 404
    assert (await admin.get("/services/nope/routes")).status_code == 404
    assert (await admin.delete("/services/secure-service/routes/secure-route")).status_code \
        == 204


# ------------------------------------------------ nothing the router cannot build is stored

BAD_ROUTES: list[tuple[dict[str, object], str, str]] = [
    # the issue's reproduction: the header regex that froze every later configuration
    ({"headers": {"x-v": ["~*("]}}, "headers",
     "invalid regex: '(' (PCRE returned: missing ), unterminated subpattern"),
    ({"headers": {"x-v": ["plain", r"~*^(a)\1$"]}}, "headers",
     r"invalid regex: '^(a)\1$' (RE2 returned: invalid escape sequence: \1"),
    ({"paths": ["/ok", "~/(?=x)look"]}, "paths",
     "invalid regex: '/(?=x)look' (RE2 returned: invalid perl operator: (?="),
    ({"paths": ["~/a{1001}"]}, "paths",
     "invalid regex: '/a{1001}' (RE2 returned: invalid repetition size: {1001}"),
]


def _error_text(fields: dict[str, object], name: str) -> str:
    value = fields[name]
    return " ".join(str(v) for v in value if v) if isinstance(value, list) else str(value)


@pytest.mark.parametrize(("extra", "field", "message"), BAD_ROUTES)
async def test_routes_the_router_cannot_build_are_refused(
        admin: httpx.AsyncClient, service: dict[str, object], extra: dict[str, object],
        field: str, message: str) -> None:
    body = {"service": {"name": "secure-service"}, "paths": ["/bad"], **extra}
    r = await admin.put("/routes/bad", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 2 and r.json()["name"] == "schema violation"
    assert _error_text(r.json()["fields"], field).startswith(message), r.text
    assert (await admin.get("/routes/bad")).status_code == 404  # nothing was stored
    # and it would have failed the snapshot build, which is what froze the configuration
    stored = {"id": str(uuid.uuid4()), "created_at": 1, "updated_at": 1,
              "protocols": ["http"], **body, "service": {"id": service["id"]}}
    with pytest.raises(RegexError):
        Router([build(ROUTES.record, stored)], {})


async def test_regex_routes_the_router_can_build_are_accepted(admin: httpx.AsyncClient) -> None:
    r = await admin.put("/routes/good", json={
        "paths": [r"~/users/(?<id>\d+)$", r"~/v(?P<v>\d)/(.*)", r"~/a\z"],
        "headers": {"x-client": ["~*^mobile-\\d+$", "desktop"]}})
    assert r.status_code == 200, r.text


async def test_a_host_port_int_refuses_is_a_400(admin: httpx.AsyncClient) -> None:
    # '²' is a digit to str.isdigit() but not to int(): once a 500, and a router build crash
    r = await admin.post("/routes", json={"hosts": ["[::1]:²"]})
    assert r.status_code == 400, r.text
    assert r.json()["fields"] == {"hosts": ["invalid ipv6 address"]}


@pytest.mark.parametrize("ref", [{"protocol": "http"}, {"name": None}, {}])
async def test_reference_without_id_or_key_is_missing_primary_key(
        admin: httpx.AsyncClient, ref: dict[str, object]) -> None:
    r = await admin.post("/routes", json={"methods": ["GET"], "service": ref})
    assert r.status_code == 400
    assert r.json() == {"code": 2, "name": "schema violation",
                        "message": "schema violation (service.id: missing primary key)",
                        "fields": {"service": {"id": "missing primary key"}}}
