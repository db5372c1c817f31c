"""Request path normalisation and Kong's upstream URI (``get_upstream_uri_v0``)."""

from __future__ import annotations

import re

from gateway.schema.typedefs import remove_dot_segments

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SLASHES = re.compile(r"/{2,}")


def _escape(match: re.Match[str]) -> str:
    byte = int(match.group(1), 16)
    return chr(byte) if byte in _UNRESERVED else "%" + match.group(1).upper()


def normalize_escapes(raw: str) -> str:
    """Upper-case ``%xx`` and decode escapes of unreserved characters (what regex routes see)."""
    if "%" not in raw:
        return raw
    return _ESCAPE.sub(_escape, raw)


def normalize(raw: str) -> str:
    """Kong's request path normalisation: escapes as above, dot segments removed, ``//``
    merged. Prefix routes match this form, and it is what goes upstream."""
    path = normalize_escapes(raw)
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if "/." in path:
        path = remove_dot_segments(path)
    return path


def upstream_uri(base: str | None, req: str, prefix: str, strip: bool) -> str:
    """Kong's v0 rules (reference 3.4). ``prefix`` is the matched path text (for a regex, the
    whole match); it is stripped only when ``strip`` is set."""
    base = base or "/"
    if strip:
        post = req[len(prefix):] if req.startswith(prefix) else req
        if post.startswith("./"):
            post = post[2:]
        elif post.startswith("../"):
            post = post[3:]
    if base.endswith("/"):
        if not strip:
            return base + req[1:]
        if post == "":
            if base == "/":
                return "/"
            return base if req.endswith("/") else base[:-1]
        return base[:-1] + post if post.startswith("/") else base + post
    if not strip:
        return base if req == "/" else base + req
    if post == "":
        return base + "/" if len(req) > 1 and req.endswith("/") else base
    return base + post if post.startswith("/") else base + "/" + post
