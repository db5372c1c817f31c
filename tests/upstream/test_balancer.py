"""The balancer and the hashing inputs, on real upstream/target records (no I/O)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from gateway.schema.build import build
from gateway.schema.entities.upstreams import TARGETS, UPSTREAMS, UpstreamEntity
from gateway.schema.validate import validate
from gateway.upstream.balancer import Balancer, peer_of
from gateway.upstream.hashing import hash_key


def upstream(**fields: Any) -> UpstreamEntity:
    data = {"id": str(uuid.uuid4()), "created_at": 1, "updated_at": 1, "name": "u", **fields}
    record: UpstreamEntity = build(UPSTREAMS.record, validate(UPSTREAMS.record, data))
    return record


def balancer(weights: dict[str, int], **fields: Any) -> Balancer:
    up = upstream(**fields)
    targets = [build(TARGETS.record, validate(TARGETS.record, {
        "id": str(uuid.uuid4()), "created_at": 1.0, "updated_at": 1.0,
        "upstream": {"id": up.id}, "target": f"{name}:80", "weight": w}))
        for name, w in weights.items()]
    return Balancer(up, tuple(peer_of(t) for t in targets))


def test_smooth_weighted_round_robin() -> None:
    b = balancer({"a": 1, "b": 1, "c": 2})
    picks = [b.pick().host for _ in range(8)]  # type: ignore[union-attr]
    assert picks.count("c") == 4 and picks.count("a") == 2
    assert "cc" not in "".join(p[0] for p in picks[:4])  # interleaved, not bursts


def test_least_connections() -> None:
    b = balancer({"a": 1, "b": 1}, algorithm="least-connections")
    first = b.pick()
    assert first is not None
    b.started(first)
    second = b.pick()
    assert second is not None and second.host != first.host


def test_health_counters() -> None:
    checks = {"passive": {"unhealthy": {"http_failures": 2, "http_statuses": [500]},
                          "healthy": {"successes": 2}}}
    b = balancer({"a": 1, "b": 1}, healthchecks=checks)
    b.passive("a:80", "success", 500)
    assert b.status_of("a:80") == "HEALTHY"
    b.passive("a:80", "success", 200)  # a success resets the failure count
    b.passive("a:80", "success", 500)
    assert b.status_of("a:80") == "HEALTHY"
    b.passive("a:80", "success", 500)
    assert b.status_of("a:80") == "UNHEALTHY"
    assert {b.pick().host for _ in range(4)} == {"b"}  # type: ignore[union-attr]
    b.active("a:80", "success")
    b.active("a:80", "success")  # active successes bring it back (default threshold 0: no)
    assert b.status_of("a:80") == "UNHEALTHY"
    b.passive("a:80", "success", 200)
    b.passive("a:80", "success", 200)
    assert b.status_of("a:80") == "HEALTHY"


def test_threshold_takes_the_upstream_down() -> None:
    checks = {"threshold": 60, "passive": {"unhealthy": {"tcp_failures": 1}}}
    b = balancer({"a": 1, "b": 1}, healthchecks=checks)
    b.passive("a:80", "tcp_failure", None)
    assert not b.available() and b.pick() is None  # 50% healthy < 60%


def scope(**parts: Any) -> dict[str, Any]:
    return {"client": ("10.1.2.3", 5555), "headers": parts.get("headers", []),
            "query_string": parts.get("query", b"")}


@pytest.mark.parametrize(("fields", "req", "key"), [
    ({"hash_on": "ip"}, scope(), "10.1.2.3"),
    ({"hash_on": "header", "hash_on_header": "X-User"},
     scope(headers=[(b"x-user", b"alice")]), "alice"),
    ({"hash_on": "header", "hash_on_header": "X-User", "hash_fallback": "ip"}, scope(),
     "10.1.2.3"),
    ({"hash_on": "path"}, scope(), "/a/b"),
    ({"hash_on": "query_arg", "hash_on_query_arg": "tenant"}, scope(query=b"tenant=t1&x=2"),
     "t1"),
    ({"hash_on": "uri_capture", "hash_on_uri_capture": "id"}, scope(), "42"),
    ({"hash_on": "cookie", "hash_on_cookie": "lb"},
     scope(headers=[(b"cookie", b"other=1; lb=sticky")]), "sticky"),
    ({"hash_on": "cookie", "hash_on_cookie": "lb"},  # pairs a strict parser refuses
     scope(headers=[(b"cookie", b"a[b]=1; x=\"q; lb=sticky")]), "sticky"),
    ({"hash_on": "consumer", "hash_fallback": "path"}, scope(), "/a/b"),
])
def test_hash_inputs(fields: dict[str, Any], req: dict[str, Any], key: str) -> None:
    assert hash_key(upstream(**fields), req, "/a/b", {"id": "42"}) == (key, None)


def test_missing_cookie_is_made_up_and_set() -> None:
    value, cookie = hash_key(upstream(hash_on="cookie", hash_on_cookie="lb",
                                      hash_on_cookie_path="/app"), scope(), "/", {})
    assert value and cookie == f"lb={value}; Path=/app".encode()
