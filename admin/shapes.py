"""What each Admin API path serves, as data next to its handlers.

A ``Resource`` may carry a ``Shape``: the entity whose rows the path reads and writes and the
kind of endpoint (collection, entity, parent, ...). The OpenAPI generator (``admin/openapi.py``)
derives request bodies, responses and query parameters from it and from the entity schemas,
so the contract cannot drift from the routes. A path without a shape is still listed (a GET
answering some JSON object), so endpoints added later appear in the contract at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["collection", "entity", "parent", "action", "validate", "meta"]

PAGE_QUERY = ("size", "offset")
LIST_QUERY = ("size", "offset", "tags")


@dataclass(frozen=True)
class Shape:
    """``kind`` decides the status codes and bodies per method:

    - ``collection``: GET a page of ``entity`` rows, POST creates one (201);
    - ``entity``: GET/PUT/PATCH answer the row (200), DELETE 204;
    - ``parent``: ``/E/{key}/<foreign field>``: the referenced ``entity`` row, DELETE is 405;
    - ``action``: a write without a body answering 204 (target health);
    - ``validate``: POST an ``entity`` body, 200 ``{"message"}`` when it would be accepted;
    - ``meta``: ``responses`` gives the 200 body schema per method (default: a JSON object).

    ``forced`` names the foreign field the URL fixes (nested children): never required in the
    body. ``key_field``: the field a PUT to a non-UUID key sets from the URL (whatever the body
    says). ``put_updates``: PUT merges like PATCH (targets). ``query`` lists the query
    parameters (see ``admin/openapi.QUERY``).
    """

    kind: Kind = "meta"
    entity: str | None = None
    forced: str | None = None
    key_field: str | None = None
    put_updates: bool = False
    query: tuple[str, ...] = ()
    responses: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    summary: str = ""
