"""Kong's router behaviours (reference section 3), table-driven on real route records."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.router.paths import normalize, upstream_uri
from gateway.router.router import CACHE_SIZE, CACHED_PATH_MAX, Request, Router
from gateway.schema.build import build
from gateway.schema.entities.routes import ROUTES, RouteEntity
from gateway.schema.entities.services import SERVICES, ServiceEntity
from gateway.schema.validate import validate

SERVICE_ID = str(uuid.uuid4())


def route(name: str, ident: str | None = None, **fields: Any) -> RouteEntity:
    data = {"id": ident or str(uuid.uuid4()), "created_at": 1, "updated_at": 1, "name": name,
            "service": {"id": SERVICE_ID}, **fields}
    record: RouteEntity = build(ROUTES.record, validate(ROUTES.record, data))
    return record


def service(**fields: Any) -> ServiceEntity:
    data = {"id": SERVICE_ID, "created_at": 1, "updated_at": 1, "host": "up.internal",
            **fields}
    record: ServiceEntity = build(SERVICES.record, validate(SERVICES.record, data))
    return record


def matched(routes: list[RouteEntity], path: str = "/", *, method: str = "GET",
            host: str = "example.com", port: int = 8000, headers: dict[str, list[str]]
            | None = None, scheme: str = "http", sni: str | None = None) -> str | None:
    router = Router(routes, {SERVICE_ID: service()})
    found = router.match(Request(method=method, host=host, port=port, raw_path=path,
                                 headers=headers or {}, scheme=scheme, sni=sni))
    return found.route.name if found else None


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/users", "long"),      # longest plain prefix wins
    ("/api", "short"),
    ("/apix", "short"),           # prefixes are textual: /api matches /apix
    ("/other", None),
])
def test_prefix_length_priority(path: str, expected: str | None) -> None:
    routes = [route("short", paths=["/api"]), route("long", paths=["/api/users"])]
    assert matched(routes, path) == expected


def test_regex_beats_plain_and_regex_priority() -> None:
    routes = [route("plain", paths=["/users/123/profile"]),
              route("regex-low", paths=[r"~/users/\d+/profile"]),
              route("regex-high", paths=[r"~/users/\d+"], regex_priority=10)]
    assert matched(routes, "/users/123/profile") == "regex-high"
    routes = routes[:2]
    assert matched(routes, "/users/123/profile") == "regex-low"
    assert matched(routes, "/users/abc/profile") is None


def test_regex_is_anchored_at_the_start_only() -> None:
    routes = [route("r", paths=[r"~/v\d"])]
    assert matched(routes, "/v2/anything") == "r"
    assert matched(routes, "/x/v2") is None


@pytest.mark.parametrize(("host", "expected"), [
    ("api.example.com", "exact"),
    ("www.example.com", "suffix"),
    ("a.b.example.com", "suffix"),   # route wildcards match at any depth
    ("example.org", "prefix"),
    ("Api.example.com", "suffix"),   # hosts are case-sensitive, as in Kong
    ("other.net", None),
])
def test_hosts_with_wildcards(host: str, expected: str | None) -> None:
    routes = [route("exact", hosts=["api.example.com"]),
              route("suffix", hosts=["*.example.com"]),
              route("prefix", hosts=["example.*"])]
    assert matched(routes, host=host) == expected


def test_host_with_port_needs_that_port() -> None:
    routes = [route("ported", hosts=["a.test:8443"]), route("any", hosts=["b.test"])]
    assert matched(routes, host="a.test", port=8443) == "ported"
    assert matched(routes, host="a.test", port=8000) is None


def test_ipv6_literal_hosts() -> None:
    # the request's host keeps its brackets (Host: [::1]:8000), so must the route's
    routes = [route("v6", hosts=["[::1]"]), route("v6-port", hosts=["[::2]:8443"]),
              route("v6-bare", hosts=["::3"])]
    assert matched(routes, host="[::1]", port=8000) == "v6"
    assert matched(routes, host="[::2]", port=8443) == "v6-port"
    assert matched(routes, host="[::2]", port=8000) is None
    assert matched(routes, host="[::3]") == "v6-bare"


def test_more_fields_win_then_plain_hosts() -> None:
    routes = [route("paths-only", paths=["/"]),
              route("host-and-path", hosts=["x.test"], paths=["/"]),
              route("wild-and-path", hosts=["*.test"], paths=["/"])]
    assert matched(routes, "/", host="x.test") == "host-and-path"
    assert matched(routes, "/", host="y.test") == "wild-and-path"
    assert matched(routes, "/", host="y.other") == "paths-only"


def test_ties_go_to_the_larger_route_id() -> None:
    low, high = "00000000-0000-4000-8000-000000000001", "ffffffff-0000-4000-8000-000000000001"
    routes = [route("low", low, paths=["/same"]), route("high", high, paths=["/same"])]
    assert matched(routes, "/same") == "high"
    assert matched(list(reversed(routes)), "/same") == "high"


def test_headers_and_methods() -> None:
    routes = [route("v2", paths=["/"], headers={"x-version": ["v2", "V3"]}),
              route("regex", paths=["/"], headers={"x-client": ["~*^mobile-\\d+$"]}),
              route("post", paths=["/"], methods=["POST"]),
              route("any", paths=["/"])]
    assert matched(routes, headers={"x-version": ["V2"]}) == "v2"
    assert matched(routes, headers={"x-version": ["v3"]}) == "v2"
    assert matched(routes, headers={"x-client": ["Mobile-42"]}) == "regex"
    assert matched(routes, method="POST") == "post"
    assert matched(routes, headers={"x-version": ["v9"]}) == "any"


def test_snis_only_constrain_https() -> None:
    routes = [route("sni", snis=["a.test"], paths=["/"], protocols=["http", "https"])]
    assert matched(routes, scheme="https", sni="a.test") == "sni"
    assert matched(routes, scheme="https", sni="b.test") is None
    assert matched(routes, scheme="http", sni=None) == "sni"  # Kong: skipped on plain HTTP


def test_disabled_service_and_stream_routes_are_left_out() -> None:
    routes = [route("r", paths=["/"])]
    router = Router(routes, {SERVICE_ID: service(enabled=False)})
    assert router.match(Request("GET", "h", 80, "/", {})) is None
    stream = route("s", protocols=["tcp"], destinations=[{"port": 80}])
    assert Router([stream], {}).match(Request("GET", "h", 80, "/", {})) is None


@pytest.mark.parametrize(("raw", "normalized"), [
    ("/a/./b/../c", "/a/c"),
    ("//a///b", "/a/b"),
    ("/%7euser", "/~user"),
    ("/a%2fb", "/a%2Fb"),
    ("/%41pi", "/Api"),
])
def test_request_normalisation(raw: str, normalized: str) -> None:
    assert normalize(raw) == normalized


def test_normalised_path_is_matched() -> None:
    assert matched([route("r", paths=["/api"])], "/x/../api/%75sers") == "r"


@pytest.mark.parametrize(("base", "route_path", "req", "strip", "upstream"), [
    (None, "/api", "/api/users", True, "/users"),
    (None, "/api", "/api", True, "/"),
    (None, "/api", "/apix", True, "/x"),
    (None, "/api", "/api/", True, "/"),
    ("/s", "/tv0", "/tv0/req", True, "/s/req"),
    ("/s", "/tv0", "/tv0", True, "/s"),
    ("/s", "/tv0", "/tv0/", True, "/s/"),
    ("/s/", "/tv0", "/tv0/req", True, "/s/req"),
    ("/s/", "/tv0", "/tv0", True, "/s"),
    ("/s/", "/tv0", "/tv0/", True, "/s/"),
    ("/s", "/fv0", "/fv0/", False, "/s/fv0/"),
    ("/s", "/fv0", "/", False, "/s"),
    ("/s/", "/fv0", "/fv0/x", False, "/s/fv0/x"),
    (None, "/fv0", "/fv0/x", False, "/fv0/x"),
])
def test_upstream_uri_joins(base: str | None, route_path: str, req: str, strip: bool,
                            upstream: str) -> None:
    assert upstream_uri(base, req, route_path, strip) == upstream


@pytest.mark.parametrize(("path", "host", "expected"), [
    ("/api/users/1", "example.com", "long"),  # longest prefix, among 200 other prefixes
    ("/api/v2/x", "example.com", "regex"),     # a regex path beats plain prefixes
    ("/apix", "example.com", "short"),          # prefixes stay textual
    ("/r7/x", "example.com", "r7"),
    ("/r7", "example.com", "root"),            # /r7/ does not match: the catch-all does
    ("/r170/a/../b", "example.com", "r170"),   # normalised before the lookup
    ("/api", "h.example", "hosted"),            # a plain host outranks paths alone
    ("/nothing", "example.com", "root"),
])
def test_many_routes_keep_kongs_order(path: str, host: str, expected: str) -> None:
    """With many routes the router looks prefixes up instead of trying every route; the
    answer must be the one Kong's order gives."""
    routes = [route(f"r{i}", paths=[f"/r{i}/"]) for i in range(200)]
    routes += [route("short", paths=["/api"]), route("long", paths=["/api/users"]),
               route("regex", paths=[r"~/api/v\d+"]), route("root", paths=["/"]),
               route("hosted", hosts=["h.example"])]
    assert matched(routes, path, host=host) == expected


@pytest.mark.parametrize(("path", "sni", "expected"), [
    ("/public/x", None, "public"),
    ("/public/%2e%2e/secure/admin", None, "secure"),  # normalised before any regex sees it
    ("/public/../secure/admin", None, "secure"),
    ("/secure//admin", None, "secure"),
    ("/other", "a.test", "by-sni"),
    ("/other", "b.test", None),  # the SNI is part of the key: not a.test's answer
    ("/other", None, None),
])
def test_find_answers_as_match_does(path: str, sni: str | None, expected: str | None) -> None:
    """``find``, the cached lookup the data plane uses for routers that look at no header,
    answers what ``match`` answers on the normalised path, asked twice (the second answer
    comes from the cache)."""
    routes = [route("public", paths=[r"~/public/.*"]), route("secure", paths=["/secure"]),
              route("by-sni", snis=["a.test"], protocols=["https"])]
    router = Router(routes, {SERVICE_ID: service()})
    for _ in range(2):
        found = router.find("GET", "example.com", 443, path, "https", sni)
        assert (found.route.name if found else None) == expected
        direct = router.match(Request("GET", "example.com", 443, normalize(path), {}, "https",
                                      sni))
        assert (direct.route.name if direct else None) == expected


def test_find_remembers_matches_within_a_bound() -> None:
    router = Router([route("r", paths=["/"])], {SERVICE_ID: service()})
    first = router.find("GET", "h", 80, "/a", "http", None)
    assert router.find("GET", "h", 80, "/a", "http", None) is first  # remembered
    assert router.find("POST", "h", 80, "/a", "http", None) is not first
    for n in range(CACHE_SIZE + 10):  # a client sending unique paths: memory stays bounded
        router.find("GET", "h", 80, f"/u{n}", "http", None)
    assert len(router._cache) <= CACHE_SIZE
    router._cache.clear()
    long = "/" + "x" * CACHED_PATH_MAX  # nor are long paths kept (each key would be large)
    assert router.find("GET", "h", 80, long, "http", None) is not None
    assert not router._cache
