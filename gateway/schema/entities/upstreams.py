"""``upstreams`` (with Kong's health-check tree and hashing rules) and ``targets``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from gateway.schema.checks import Conditional, Distinct, in_set
from gateway.schema.compile import Ref
from gateway.schema.entities.common import CreatedAt, CreatedAtMs, Id, UpdatedAt, UpdatedAtMs
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Between, Check, Foreign, OneOf, Unique
from gateway.schema.typedefs import (
    HostError,
    Tags,
    cookie_name,
    format_host,
    header_name,
    header_value,
    host_with_optional_port,
    map_keys,
    normalize_ip,
    path,
    sni,
)

Seconds = Annotated[float, Between(0, 65535)]
Counter = Annotated[int, Between(0, 255)]
Statuses = tuple[Annotated[int, Between(100, 999)], ...]
CheckType = Annotated[str, OneOf("tcp", "http", "https", "grpc", "grpcs")]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveHealthy:
    interval: Seconds = 0
    http_statuses: Statuses = (200, 302)
    successes: Counter = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveUnhealthy:
    interval: Seconds = 0
    http_statuses: Statuses = (429, 404, 500, 501, 502, 503, 504, 505)
    tcp_failures: Counter = 0
    timeouts: Counter = 0
    http_failures: Counter = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveChecks:
    type: CheckType = "http"
    timeout: Seconds = 1
    concurrency: Annotated[int, Between(1, 2 ** 31)] = 10
    http_path: Annotated[str, Check(path)] = "/"
    https_sni: Annotated[str | None, Check(sni)] = None
    https_verify_certificate: bool = True
    headers: Annotated[Mapping[str, tuple[Annotated[str, Check(header_value)], ...]] | None,
                       Check(map_keys(header_name))] = None
    healthy: ActiveHealthy = field(default_factory=ActiveHealthy)
    unhealthy: ActiveUnhealthy = field(default_factory=ActiveUnhealthy)


@dataclass(frozen=True, slots=True, kw_only=True)
class PassiveHealthy:
    http_statuses: Statuses = (200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302,
                               303, 304, 305, 306, 307, 308)
    successes: Counter = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PassiveUnhealthy:
    http_statuses: Statuses = (429, 500, 503)
    tcp_failures: Counter = 0
    timeouts: Counter = 0
    http_failures: Counter = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PassiveChecks:
    type: CheckType = "http"
    healthy: PassiveHealthy = field(default_factory=PassiveHealthy)
    unhealthy: PassiveUnhealthy = field(default_factory=PassiveUnhealthy)


@dataclass(frozen=True, slots=True, kw_only=True)
class Healthchecks:
    active: ActiveChecks = field(default_factory=ActiveChecks)
    passive: PassiveChecks = field(default_factory=PassiveChecks)
    threshold: Annotated[float, Between(0, 100)] = 0


def upstream_name(value: str) -> str | None:
    try:
        parsed = normalize_ip(value)
    except HostError:
        return f"Invalid name ('{value}'); must be a valid hostname"
    if parsed.kind != "name":
        return f"Invalid name ('{value}'); no ip addresses allowed"
    if parsed.port is not None:
        return f"Invalid name ('{value}'); no port allowed"
    return None


HASH_ON = ("none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture")
HashOn = Annotated[str, OneOf(*HASH_ON)]
NonEmpty = str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    name: Annotated[str, Check(upstream_name), Unique()]
    algorithm: Annotated[str, OneOf("consistent-hashing", "least-connections", "round-robin",
                                    "latency")] = "round-robin"
    hash_on: HashOn = "none"
    hash_fallback: HashOn = "none"
    hash_on_header: Annotated[str | None, Check(header_name)] = None
    hash_fallback_header: Annotated[str | None, Check(header_name)] = None
    hash_on_cookie: Annotated[str | None, Check(cookie_name)] = None
    hash_on_cookie_path: Annotated[str, Check(path)] = "/"
    hash_on_query_arg: NonEmpty = None
    hash_fallback_query_arg: NonEmpty = None
    hash_on_uri_capture: NonEmpty = None
    hash_fallback_uri_capture: NonEmpty = None
    slots: Annotated[int, Between(10, 65536)] = 10000
    healthchecks: Healthchecks = field(default_factory=Healthchecks)
    tags: Tags = None
    host_header: Annotated[str | None, Check(host_with_optional_port)] = None
    client_certificate: Annotated[Ref | None, Foreign("certificates")] = None
    use_srv_name: bool = False


def _required(value: Any) -> str | None:
    return "required field missing" if value is None else None


def _one_of(*options: str) -> Any:
    def check(value: Any) -> str | None:
        return None if value in options else "expected one of: " + ", ".join(options)

    return check


def _fallback_differs(hash_on: str) -> Conditional:
    options = tuple(h for h in HASH_ON if h != hash_on)
    return Conditional("hash_on", in_set(hash_on), "hash_fallback", _one_of(*options))


def expand_algorithm(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("algorithm") in ("least-connections", "latency"):
        return {**data, **_hash_on(None)}
    return data


def _hash_on(value: Any) -> dict[str, Any]:
    if value is None:
        return {"hash_on": "none"}
    if value == "none":
        return {"hash_on": value, "algorithm": "round-robin"}
    return {"hash_on": value, "algorithm": "consistent-hashing"}


def expand_hash_on(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("algorithm") in ("least-connections", "latency"):
        return data  # already resolved by the algorithm rewrite
    return {**data, **_hash_on(data.get("hash_on"))}


UPSTREAMS = EntitySchema.define(
    UpstreamEntity, "upstreams", endpoint_key="name",
    rewrites={"algorithm": expand_algorithm, "hash_on": expand_hash_on},
    checks=(
        Conditional("hash_on", in_set("header"), "hash_on_header", _required),
        Conditional("hash_fallback", in_set("header"), "hash_fallback_header", _required),
        Conditional("hash_on", in_set("cookie"), "hash_on_cookie", _required),
        Conditional("hash_fallback", in_set("cookie"), "hash_on_cookie", _required),
        Conditional("hash_on", in_set("none"), "hash_fallback", _one_of("none")),
        Conditional("hash_on", in_set("cookie"), "hash_fallback", _one_of("none")),
        _fallback_differs("consumer"),
        _fallback_differs("ip"),
        _fallback_differs("path"),
        Distinct(("hash_on_header", "hash_fallback_header")),
        Conditional("hash_on", in_set("query_arg"), "hash_on_query_arg", _required),
        Conditional("hash_fallback", in_set("query_arg"), "hash_fallback_query_arg",
                    _required),
        Distinct(("hash_on_query_arg", "hash_fallback_query_arg")),
        Conditional("hash_on", in_set("uri_capture"), "hash_on_uri_capture", _required),
        Conditional("hash_fallback", in_set("uri_capture"), "hash_fallback_uri_capture",
                    _required),
        Distinct(("hash_on_uri_capture", "hash_fallback_uri_capture")),
    ),
)


def target_address(value: str) -> str | None:
    try:
        normalize_ip(value)
    except HostError:
        return f"Invalid target ('{value}'); not a valid hostname or ip address"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetEntity:
    id: Id
    created_at: CreatedAtMs
    updated_at: UpdatedAtMs
    upstream: Annotated[Ref, Foreign("upstreams", on_delete="cascade")]
    target: Annotated[str, Check(target_address)]
    weight: Annotated[int, Between(0, 65535)] = 100
    tags: Tags = None


def normalize_target(data: dict[str, Any]) -> dict[str, Any]:
    """Kong stores targets as ``host:port`` with the default port 8000 appended."""
    value = data.get("target")
    if isinstance(value, str):
        try:
            return {**data, "target": format_host(normalize_ip(value), 8000)}
        except HostError:
            pass
    return data


TARGETS = EntitySchema.define(
    TargetEntity, "targets", endpoint_key="target", cache_key=("upstream", "target"),
    rewrites={"target": normalize_target}, generate_admin_api=False)
