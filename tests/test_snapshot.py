"""The snapshot's fail-closed guard: a route covered by an enabled plugin this node has no
handler for is refused (500), never proxied as if the plugin were absent."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.plugins.handlers import HANDLERS
from gateway.snapshot import Loaded, build_snapshot

SERVICE = {"id": "11111111-1111-4111-8111-111111111111", "created_at": 0, "updated_at": 0,
           "host": "127.0.0.1", "port": 80, "protocol": "http", "path": None}
ROUTE = {"id": "22222222-2222-4222-8222-222222222222", "created_at": 0, "updated_at": 0,
         "paths": ["/guarded"], "service": {"id": SERVICE["id"]}}


def plugin(scope: dict[str, Any], enabled: bool = True) -> dict[str, Any]:
    return {"id": "33333333-3333-4333-8333-333333333333", "name": "acl", "enabled": enabled,
            "route": None, "service": None, "consumer": None, "config": {"allow": ["ops"]},
            "protocols": ["http", "https"], **scope}


@pytest.mark.parametrize(("row", "handlers", "refused"), [
    (plugin({"route": {"id": ROUTE["id"]}}), {}, {ROUTE["id"]: "acl"}),
    (plugin({"service": {"id": SERVICE["id"]}}), {}, {ROUTE["id"]: "acl"}),
    (plugin({}), {}, {"*": "acl"}),
    (plugin({"route": {"id": ROUTE["id"]}}, enabled=False), {}, {}),
    (plugin({"route": {"id": ROUTE["id"]}}), HANDLERS, {}),   # the bundled handlers run it
])
def test_unrunnable_plugins(row: dict[str, Any], handlers: Any, refused: dict[str, str]
                            ) -> None:
    loaded = Loaded(version=1, rows={"services": [SERVICE], "routes": [ROUTE],
                                     "plugins": [row]})
    assert dict(build_snapshot(loaded, handlers=handlers).unrunnable) == refused
