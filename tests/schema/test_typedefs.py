"""Kong's typedef validators, table-driven (messages from Kong's typedefs.lua)."""

from __future__ import annotations

import pytest

from gateway.schema import typedefs as t
from gateway.schema.entities.services import parse_url
from gateway.schema.entities.upstreams import normalize_target, upstream_name


@pytest.mark.parametrize(("value", "error"), [
    ("example.com", None),
    ("10.0.0.1", None),
    ("::1", None),
    ("[::1]", None),
    ("under_score.test", None),
    ("example.", None),
    ("example.com:80", "must not have a port"),
    ("example.com:1000000", "must not have a port"),
    ("mock;bin", "invalid value: mock;bin"),
    ("*example.com", "invalid value: *example.com"),
    ("example-.org", "invalid value: example-.org"),
    ("a..b", "invalid value: a..b"),
])
def test_host(value: str, error: str | None) -> None:
    assert t.host(value) == error


@pytest.mark.parametrize(("value", "error"), [
    ("*", None),
    ("*.example.com", None),
    ("example.*", None),
    ("*.test.wildcard.com", None),
    ("*example.com", None),  # passes, but can never be selected (Kong does the same)
    ("foo.*.com", "wildcard must be leftmost or rightmost character"),
    ("*.example.*", "only one wildcard must be specified"),
    ("*.wildcard.com:8000", "must not have a port"),
    ("test.wildcard.com:*", "invalid value: test.wildcard.com:wildcard"),
    ("example^com", "invalid value: example^com"),
    ("10.0.0.1", "must not be an IP"),
    ("a.test:443", "must not have a port"),
])
def test_wildcard_host(value: str, error: str | None) -> None:
    assert t.wildcard_host(value) == error


@pytest.mark.parametrize(("value", "error"), [
    ("example.com", None),
    ("example.com:8080", None),
    ("*.example.org:321", None),
    ("example.*", None),
    ("[::1]:80", None),
    ("*.example.*", "invalid wildcard: must have at most one wildcard"),
    ("**.example.com", "invalid wildcard: must have at most one wildcard"),
    ("*example.com", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("mock*bin.com", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("*", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("example.*:8080", "invalid wildcard: must be placed at leftmost or rightmost label"),
    ("example.com:1000000", "invalid port number"),
    ("/example", "invalid hostname: /example"),
])
def test_route_host(value: str, error: str | None) -> None:
    assert t.route_host(value) == error


@pytest.mark.parametrize(("value", "error"), [
    ("/", None),
    ("/api/v1", None),
    ("/~user", None),
    ("~/users/\\d+", None),
    ("~/(?<name>[a-z]+)", None),
    ("api", "should start with: / (fixed path) or ~/ (regex path)"),
    ("//a", "must not have empty segments"),
    ("/a//b", "must not have empty segments"),
    ("/a/./b", "non-normalized path, consider use '/a/b' instead"),
    ("/a/../b", "non-normalized path, consider use '/b' instead"),
    ("/%7Efoo", "non-normalized path, consider use '/~foo' instead"),
    ("/a%2fb", "non-normalized path, consider use '/a%2Fb' instead"),
    ("/foo%zz", "invalid url-encoded value: '%zz'"),
])
def test_router_path(value: str, error: str | None) -> None:
    assert t.router_path(value) == error


def test_router_path_bad_regex() -> None:
    err = t.router_path("~/users/(foo/profile")
    assert err is not None
    assert err.startswith("invalid regex: '/users/(foo/profile' (PCRE returned:")


@pytest.mark.parametrize(("value", "error"), [
    ("/", None),
    ("/some/path", None),
    ("ovo", "should start with: /"),
    ("/a//b", "must not have empty segments"),
    ("/a b", "invalid path: '/a b' (characters outside of the reserved list of RFC 3986 found)"),
    ("/some%2words", "invalid url-encoded value: '%2w'"),
    ("/x%", "invalid url-encoded value: '%'"),
])
def test_service_path(value: str, error: str | None) -> None:
    assert t.path(value) == error


@pytest.mark.parametrize(("value", "ok"), [
    ("my-service_1.v2~x", True), ("孔", True), ("🦍", True),
    ("examp le", False), ("examp:le", False), ("examp/le", False),
])
def test_utf8_name(value: str, ok: bool) -> None:
    assert (t.utf8_name(value) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("prod", True), ("team a", True), ("é", True), ("a,b", False), ("a/b", False),
])
def test_tag(value: str, ok: bool) -> None:
    assert (t.tag(value) is None) is ok


@pytest.mark.parametrize(("value", "error"), [
    ("backend.internal", None),
    ("192.168.0.1", "Invalid name ('192.168.0.1'); no ip addresses allowed"),
    ("myserver:8000", "Invalid name ('myserver:8000'); no port allowed"),
    ("1234", "Invalid name ('1234'); must be a valid hostname"),
    ("fafa fafa", "Invalid name ('fafa fafa'); must be a valid hostname"),
])
def test_upstream_name(value: str, error: str | None) -> None:
    assert upstream_name(value) == error


@pytest.mark.parametrize(("value", "stored"), [
    ("10.0.0.1", "10.0.0.1:8000"),
    ("010.0.0.1:80", "10.0.0.1:80"),
    ("::1", "[0000:0000:0000:0000:0000:0000:0000:0001]:8000"),
    ("[::1]:80", "[0000:0000:0000:0000:0000:0000:0000:0001]:80"),
    ("Backend.local", "Backend.local:8000"),
])
def test_target_normalisation(value: str, stored: str) -> None:
    assert normalize_target({"target": value})["target"] == stored


@pytest.mark.parametrize(("url", "fields"), [
    ("https://mockbin.org", {"protocol": "https", "host": "mockbin.org", "port": 443,
                             "path": None}),
    ("http://h/", {"protocol": "http", "host": "h", "port": 80, "path": "/"}),
    ("http://h:8080/p?q=1#f", {"protocol": "http", "host": "h", "port": 8080, "path": "/p"}),
    ("grpcs://h", {"protocol": "grpcs", "host": "h", "port": 80, "path": None}),
    ("tls://h", {"protocol": "tls", "host": "h", "port": 80, "path": None}),
    ("http://user:pw@[::1]:81/x", {"protocol": "http", "host": "::1", "port": 81,
                                   "path": "/x"}),
    ("http://h:abc", {"protocol": "http", "host": "h", "port": "abc", "path": None}),
    ("foo", {"protocol": "http", "host": None, "port": 80, "path": "foo"}),
])
def test_service_url_shorthand(url: str, fields: dict[str, object]) -> None:
    assert parse_url(url) == fields
