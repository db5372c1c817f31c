"""``GET /audit_log``: the audit log, newest first, paginated like Kong's lists (``size``,
opaque ``offset``, ``next``) and filterable by ``entity``, ``operation``, ``actor`` and
``since``/``until`` (inclusive epoch seconds)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from admin.audit import OPERATIONS
from admin.entities import page_size
from admin.http import Resource, json_response
from gateway.db import audit as audit_log
from gateway.db.store import Store
from gateway.errors import InvalidOptions

FILTERS = ("entity", "operation", "actor", "since", "until")
_OPERATION_NAMES = tuple(dict.fromkeys(OPERATIONS.values()))
_EPOCH = re.compile(r"-?[0-9]{1,15}")  # fits a BIGINT on both databases


def routes(store: Store) -> list[BaseRoute]:
    async def listing(request: Request) -> Response:
        size = page_size(request)
        where = parse_filter(request.query_params)
        async with store.read() as conn:
            page = await audit_log.page(conn, where, size=size,
                                        offset=request.query_params.get("offset"))
        out: dict[str, Any] = {"data": page.data, "next": None}
        if page.offset is not None:
            out["offset"] = page.offset
            out["next"] = next_url(request, page.offset)
        return json_response(200, out)

    return [Route("/audit_log", Resource(get=listing))]


def parse_filter(query: Any) -> audit_log.Filter:
    """The filters of a query string; every bad value is reported at once (Kong's code 11)."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in FILTERS:
        raw = query.get(name)
        if raw is None:
            continue
        if raw == "":
            problems[name] = "cannot be empty"
        elif name in ("since", "until"):
            if not _EPOCH.fullmatch(raw):
                problems[name] = "expected an integer (epoch seconds)"
            else:
                values[name] = int(raw)
        elif name == "operation" and raw not in _OPERATION_NAMES:
            problems[name] = f"expected one of: {', '.join(_OPERATION_NAMES)}"
        elif "\x00" in raw:
            problems[name] = "must not contain a NUL character"  # no stored text has one
        else:
            values[name] = raw
    if problems:
        raise InvalidOptions(problems)
    return audit_log.Filter(**values)


def next_url(request: Request, offset: str) -> str:
    """The next page keeps the size and the filters of this one."""
    url = f"/audit_log?offset={quote(offset, safe='')}"
    for name in ("size", *FILTERS):
        if name in request.query_params:
            url += f"&{name}={quote(request.query_params[name], safe='')}"
    return url
