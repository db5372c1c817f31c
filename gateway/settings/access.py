"""Checks of the Admin API access settings: origins, server names and the rule that a
non-loopback ``admin_listen`` needs authentication.

Kept apart from ``model.py`` so the settings model only declares the fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.schema.checks import Issues
from gateway.settings import listen

ROLES = ("admin", "read-only")
AUTH_MODES = ("off", "on", "required")

_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?$")
_NAME = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$")


def origin(value: str) -> str | None:
    """An ``admin_gui_origin`` entry: compared byte for byte with the browser's ``Origin``,
    so it must be written the way browsers serialise it."""
    if "*" in value:
        return "wildcards are not allowed: list each origin exactly (scheme://host[:port])"
    if not _ORIGIN.match(value):
        return ("expected an origin as browsers send it: scheme://host[:port] in lower case, "
                "without a path or trailing slash (e.g. https://admin.example.com)")
    if value.endswith((":80", ":443")) and value.startswith(
            "http://" if value.endswith(":80") else "https://"):
        return "leave the default port out: browsers never send it in Origin"
    return None


def gui_url(value: str) -> str | None:
    """Kong's ``admin_gui_url``: Kong Manager's address, whose origin may call the API."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http(s) URL, e.g. http://localhost:8002"
    return None


def origin_of(url: str) -> str:
    """The origin a browser sends for pages under ``url`` (lower case, no default port)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port not in (None, default) else ""
    return f"{parts.scheme}://{host}{port}"


def server_name(value: str) -> str | None:
    if not _NAME.match(value):
        return "expected a host name or IP address, without a port"
    return None


def access_check(values: Mapping[str, Any]) -> Issues:
    """Cross-field rules; ``admin_listen`` entries are already valid when this runs."""
    issues: Issues = []
    try:
        listeners = listen.parse(values.get("admin_listen") or ())
    except listen.ListenError:
        return []  # 'off' next to an address: load() reports that combination
    if (values.get("admin_auth") or "off") == "off":
        for listener in listeners:
            if not listener.loopback:
                issues.append(("admin_listen", _exposed(listener)))
    if values.get("admin_ssl_client_ca") and not any(x.ssl for x in listeners):
        issues.append(("admin_ssl_client_ca", "needs an admin_listen entry with the ssl flag "
                       "(e.g. '127.0.0.1:8444 ssl')"))
    if values.get("admin_client_roles") and not values.get("admin_ssl_client_ca"):
        issues.append(("admin_client_roles", "needs admin_ssl_client_ca (the CA that signs "
                       "the client certificates)"))
    return issues


def _exposed(listener: listen.Listener) -> str:
    return (f"{listener.host}:{listener.port} is not a loopback address and admin_auth is "
            "off: anyone who can reach it could change the configuration and read every "
            "private key. Enable authentication with admin_auth: on (then create a token: "
            "ramparts admin-tokens create NAME --role admin), or listen on 127.0.0.1")
