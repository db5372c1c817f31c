"""``services`` (Kong 3.x) and its ``url`` shorthand."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from gateway.errors import SchemaViolation
from gateway.schema.checks import Conditional, in_set, must_be_null, not_in_set
from gateway.schema.compile import Ref
from gateway.schema.entities.common import CreatedAt, Id, UpdatedAt
from gateway.schema.entity import EntitySchema
from gateway.schema.fields import Between, Check, Foreign, OneOf
from gateway.schema.typedefs import PROTOCOLS, Tags, Utf8Name, UuidStr, host, path
from gateway.text import is_digits

Timeout = Annotated[int | None, Between(1, 2147483646)]
TLS_PROTOCOLS = ("https", "tls", "wss")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntity:
    id: Id
    created_at: CreatedAt
    updated_at: UpdatedAt
    name: Utf8Name = None
    retries: Annotated[int | None, Between(0, 32767)] = 5
    protocol: Annotated[str, OneOf(*PROTOCOLS)] = "http"
    host: Annotated[str, Check(host)]
    port: Annotated[int, Between(0, 65535)] = 80
    path: Annotated[str | None, Check(path)] = None
    connect_timeout: Timeout = 60000
    write_timeout: Timeout = 60000
    read_timeout: Timeout = 60000
    tags: Tags = None
    client_certificate: Annotated[Ref | None, Foreign("certificates")] = None
    tls_verify: bool | None = None
    tls_verify_depth: Annotated[int | None, Between(0, 64)] = None
    ca_certificates: tuple[UuidStr, ...] | None = None
    enabled: bool = True


_SCHEME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9+\-.]*):")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def parse_url(url: str) -> dict[str, Any]:
    """LuaSocket ``url.parse`` as Kong uses it: query, fragment, params and userinfo are
    dropped; the scheme is kept as written; a non-numeric port is kept as text."""
    rest = url.split("#", 1)[0]
    scheme = None
    match = _SCHEME.match(rest)
    if match:
        scheme, rest = match.group(1), rest[match.end():]
    authority = None
    if rest.startswith("//"):
        rest = rest[2:]
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, rest = rest[:cut], rest[cut:]
    rest = rest.split("?", 1)[0].split(";", 1)[0]
    parsed_host: str | None = None
    port: Any = None
    if authority is not None:
        authority = authority.rsplit("@", 1)[-1]
        port_match = re.search(r":([^:\]]*)$", authority)
        if port_match:
            port, authority = port_match.group(1), authority[:port_match.start()]
        if authority:
            parsed_host = re.sub(r"^\[(.+)\]$", r"\1", authority)
    if isinstance(port, str) and is_digits(port):
        port = int(port)
    protocol = scheme or ("https" if port == 443 else "http")
    if port is None:
        port = _DEFAULT_PORTS.get(protocol, 80)
    return {"protocol": protocol, "host": parsed_host, "port": port, "path": rest or None}


def expand_url(data: dict[str, Any]) -> dict[str, Any]:
    url = data.pop("url")
    if url is None:
        return data
    if not isinstance(url, str):
        raise SchemaViolation({"url": "expected a string"})
    if not url:
        raise SchemaViolation({"url": "length must be at least 1"})
    return {**data, **parse_url(url)}  # the shorthand wins over explicit fields, as in Kong


def _only_tls(field: str) -> Conditional:
    return Conditional("protocol", not_in_set(*TLS_PROTOCOLS), field, must_be_null)


SERVICES = EntitySchema.define(
    ServiceEntity, "services", endpoint_key="name",
    rewrites={"url": expand_url},
    checks=(
        Conditional("protocol", in_set("tcp", "tls", "udp", "grpc", "grpcs"), "path",
                    must_be_null),
        _only_tls("client_certificate"),
        _only_tls("tls_verify"),
        _only_tls("tls_verify_depth"),
        _only_tls("ca_certificates"),
    ),
)
