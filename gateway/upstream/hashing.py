"""The consistent-hashing input (Kong's ``hash_on`` / ``hash_fallback``), from a request."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from gateway.schema.entities.upstreams import UpstreamEntity


def _header(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    values = [v.decode("latin-1") for k, v in headers if k == wanted]
    return ",".join(values) if values else None


def _cookie(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    """nginx's ``$cookie_<name>``: split on ``;`` and ``=``, nothing more. (SimpleCookie
    stops at the first pair it finds illegal, e.g. ``a[b]=1``, losing the sticky cookie.)"""
    for key, value in headers:
        if key == b"cookie":
            for pair in value.decode("latin-1").split(";"):
                cookie, eq, content = pair.strip().partition("=")
                if eq and cookie == name:
                    return content
    return None


def _input(kind: str, scope: Mapping[str, Any], path: str, captures: Mapping[str, str],
           header: str | None, query_arg: str | None, capture: str | None,
           cookie: str | None) -> str | None:
    if kind == "ip":
        client = scope.get("client")
        return str(client[0]) if client else None
    if kind == "header" and header:
        return _header(scope["headers"], header)
    if kind == "cookie" and cookie:
        return _cookie(scope["headers"], cookie)
    if kind == "path":
        return path
    if kind == "query_arg" and query_arg:
        values = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        found = values.get(query_arg)
        return ",".join(found) if found else None
    if kind == "uri_capture" and capture:
        return captures.get(capture)
    return None  # "none", and "consumer" until an authentication plugin names one


def hash_key(upstream: UpstreamEntity, scope: Mapping[str, Any], path: str,
             captures: Mapping[str, str]) -> tuple[str | None, bytes | None]:
    """``(key, set_cookie)``: with ``hash_on: cookie`` and no cookie yet, Kong makes one up
    and sets it on the response so the client sticks to its target from then on."""
    u = upstream
    key = _input(u.hash_on, scope, path, captures, u.hash_on_header, u.hash_on_query_arg,
                 u.hash_on_uri_capture, u.hash_on_cookie)
    if key is None and u.hash_on == "cookie" and u.hash_on_cookie:
        value = uuid.uuid4().hex
        cookie = f"{u.hash_on_cookie}={value}; Path={u.hash_on_cookie_path}"
        return value, cookie.encode("latin-1")
    if key is None:
        key = _input(u.hash_fallback, scope, path, captures, u.hash_fallback_header,
                     u.hash_fallback_query_arg, u.hash_fallback_uri_capture, u.hash_on_cookie)
    return key, None
