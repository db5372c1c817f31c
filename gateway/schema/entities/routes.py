"""``routes`` (Kong 3.x, ``traditional_compatible`` flavour) with the per-protocol rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from gateway.schema.checks import AtLeastOneOf, Issues, quoted
from gateway.schema.compile import Ref
from gateway.schema.entities.common import CreatedAt, Id, UpdatedAt
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Between, Check, Foreign, LenMin, OneOf, Set
from gateway.schema.typedefs import (
    PROTOCOLS,
    Tags,
    Utf8Name,
    WildcardHost,
    http_method,
    ip_or_cidr,
    map_keys,
    route_header_name,
    route_header_value,
    route_host,
    router_path,
)

EXCLUSIVE = (("http", "https"), ("tcp", "tls", "udp"), ("tls_passthrough",),
             ("grpc", "grpcs"), ("ws", "wss"))


def exclusive_subsets(protocols: tuple[str, ...] | list[str]) -> str | None:
    used: list[tuple[str, ...]] = []
    for proto in protocols:
        for group in EXCLUSIVE:
            if proto in group and group not in used:
                used.append(group)
    if len(used) > 1:
        return "these sets are mutually exclusive: " + ", ".join(
            f"({quoted(g)})" for g in used)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CidrPort:
    __checks__ = (AtLeastOneOf(("ip", "port")),)

    ip: Annotated[str | None, Check(ip_or_cidr)] = None
    port: Annotated[int | None, Between(0, 65535)] = None

Protocol = Annotated[str, OneOf(*PROTOCOLS)]
CidrPorts = Annotated[tuple[CidrPort, ...] | None, Set()]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    name: Utf8Name = None
    protocols: Annotated[tuple[Protocol, ...], Set(), LenMin(1), Check(exclusive_subsets)] = (
        "http", "https")
    methods: Annotated[tuple[Annotated[str, Check(http_method)], ...] | None, Set()] = None
    hosts: tuple[Annotated[str, Check(route_host)], ...] | None = None
    paths: tuple[Annotated[str, Check(router_path)], ...] | None = None
    headers: Annotated[Mapping[str, tuple[Annotated[str, Check(route_header_value)], ...]]
                       | None, Check(map_keys(route_header_name))] = None
    https_redirect_status_code: Annotated[int, OneOf(426, 301, 302, 307, 308)] = 426
    regex_priority: int = 0
    strip_path: bool = True
    path_handling: Annotated[str, OneOf("v0", "v1")] = "v0"
    preserve_host: bool = False
    request_buffering: bool = True
    response_buffering: bool = True
    snis: Annotated[tuple[WildcardHost, ...] | None, Set()] = None
    sources: CidrPorts = None
    destinations: CidrPorts = None
    tags: Tags = None
    service: Annotated[Ref | None, Foreign("services")] = None


def _nonempty(value: Any) -> bool:
    return value not in (None, "", [], {}, ())


STREAM = ("tcp", "tls", "tls_passthrough", "udp")
GRPC = ("grpc", "grpcs")
WS = ("ws", "wss")
SNI_PROTOCOLS = ("grpcs", "https", "tls", "tls_passthrough", "wss")


def _bans(protocols: set[str]) -> tuple[tuple[str, ...], str]:
    if protocols & {"http", "https"}:
        return ("sources", "destinations"), "'http' or 'https'"
    if protocols & set(STREAM):
        return ("methods", "hosts", "paths", "headers"), \
            "'tcp', 'tls', 'tls_passthrough' or 'udp'"
    if protocols & set(GRPC):
        return ("strip_path", "methods", "sources", "destinations"), "'grpc' or 'grpcs'"
    if protocols & set(WS):
        return ("methods", "sources", "destinations"), "'ws' or 'wss'"
    return (), ""


def _must_set(protocols: set[str]) -> tuple[tuple[str, ...], str] | None:
    if "https" in protocols:
        return ("methods", "hosts", "headers", "paths", "snis"), "'https'"
    if "http" in protocols:
        return ("methods", "hosts", "headers", "paths"), "'http'"
    if protocols and protocols <= {"tcp", "tls", "udp"}:
        return ("sources", "destinations", "snis"), "'tcp', 'tls' or 'udp'"
    if "tls_passthrough" in protocols:
        return ("snis",), "'tls_passthrough'"
    if "grpcs" in protocols:
        return ("hosts", "headers", "paths", "snis"), "'grpcs'"
    if "grpc" in protocols:
        return ("hosts", "headers", "paths"), "'grpc'"
    if "wss" in protocols:
        return ("hosts", "headers", "paths", "snis"), "'wss'"
    if "ws" in protocols:
        return ("hosts", "headers", "paths"), "'ws'"
    return None


class RouteRules:
    """Kong's route subschemas: per-protocol field bans and "must set one of" rules."""

    fields = ("protocols",)
    always = False

    def __call__(self, values: Mapping[str, Any]) -> Issues:
        protocols = set(values.get("protocols") or ())
        issues: Issues = []
        banned, label = _bans(protocols)
        for name in banned:
            value = values.get(name)
            if (name == "strip_path" and value is True) or \
                    (name != "strip_path" and _nonempty(value)):
                issues.append((name, f"cannot set '{name}' when 'protocols' is {label}"))
        if _nonempty(values.get("snis")) and not protocols & set(SNI_PROTOCOLS):
            issues.append((None, "'snis' can only be set when 'protocols' is 'grpcs', 'https',"
                                 " 'tls' or 'tls_passthrough'"))
            issues.append(("snis", "length must be 0"))
        rule = _must_set(protocols)
        if rule and not any(_nonempty(values.get(f)) for f in rule[0]):
            names, label = rule
            if names == ("snis",):
                issues.append((None, f"must set snis when 'protocols' is {label}"))
            else:
                issues.append((None, f"must set one of {quoted(names)} when 'protocols' is "
                                     f"{label}"))
        return issues


def grpc_strip_default(data: dict[str, Any]) -> dict[str, Any]:
    """gRPC routes default ``strip_path`` to false (Kong's grpc subschema)."""
    protocols = data.get("protocols")
    # runs before validation: the elements may be anything (`[["grpc"]]` must reach the schema)
    if isinstance(protocols, (list, tuple)) and any(p in GRPC for p in protocols
                                                    if isinstance(p, str)) \
            and "strip_path" not in data:
        return {**data, "strip_path": False}
    return data


ROUTES = EntitySchema.define(RouteEntity, "routes", endpoint_key="name",
                             rewrites={"protocols": grpc_strip_default},
                             checks=(RouteRules(),))
