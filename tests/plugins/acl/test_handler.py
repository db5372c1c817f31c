"""acl's decision table (kong.md §7.1), through the PDK objects the exchange builds."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.plugins.acl.handler import AclHandler
from gateway.plugins.directory import build_directory
from gateway.plugins.pdk import ClientView, Consumer, Exit, Kong, RequestView

ALICE = Consumer(id="a1", username="alice")
NOBODY = Consumer(id="n1", username="nobody")  # no acls rows
DB = build_directory({"acls": [
    {"id": "x1", "consumer": {"id": "a1"}, "group": "ops", "created_at": 1},
    {"id": "x2", "consumer": {"id": "a1"}, "group": "dev", "created_at": 2}]})
CRED = {"id": "c1"}


def kong(consumer: Consumer | None, credential: Any, groups: list[str] | None) -> Kong:
    k = Kong(request=RequestView("GET", "https", "h", 443, "/", b"", []),
             client=ClientView(ip="127.0.0.1", tls=None, consumer=consumer,
                               credential=credential), protocol="https", db=DB)
    if groups is not None:
        k.ctx["authenticated_groups"] = groups
    return k


@pytest.mark.parametrize(("config", "consumer", "credential", "groups", "outcome"), [
    ({"allow": ["ops"]}, None, None, None, 401),
    ({"allow": ["ops"]}, None, CRED, None, 403),
    ({"allow": ["cn1"]}, None, None, ["cn1"], "x-authenticated-groups: cn1"),
    ({"allow": ["cn1"]}, None, None, ["cn2"], 403),
    ({"deny": ["cn1"]}, None, None, ["cn1", "cn2"], 403),
    ({"allow": ["ops"]}, ALICE, CRED, None, "x-consumer-groups: ops, dev"),
    ({"allow": ["ops"]}, ALICE, CRED, ["cn1"], "x-consumer-groups: ops, dev"),
    ({"allow": ["ops"], "always_use_authenticated_groups": True}, ALICE, CRED, ["cn1"], 403),
    ({"allow": ["cn1"]}, ALICE, None, ["cn1"], "x-authenticated-groups: cn1"),  # anonymous
    ({"deny": ["dev"]}, ALICE, CRED, None, 403),
    ({"deny": ["qa"]}, ALICE, CRED, None, "x-consumer-groups: ops, dev"),
    ({"deny": ["qa"]}, NOBODY, CRED, None, "x-consumer-groups: "),  # deny mode: no rows ok
    ({"allow": ["ops"]}, NOBODY, CRED, None, 403),
    ({"allow": ["ops"]}, NOBODY, None, None, 401),
    ({"allow": ["ops"], "deny": []}, ALICE, CRED, None, "x-consumer-groups: ops, dev"),
    ({"allow": ["ops"], "hide_groups_header": True}, ALICE, CRED, None, ""),
])
def test_decisions(config: dict[str, Any], consumer: Consumer | None, credential: Any,
                   groups: list[str] | None, outcome: int | str) -> None:
    k = kong(consumer, credential, groups)
    handler = AclHandler({"hide_groups_header": False,
                          "always_use_authenticated_groups": False, **config})
    try:
        handler.access(k)
    except Exit as stop:
        assert stop.status == outcome
        assert stop.message == ("Unauthorized" if outcome == 401
                                else "You cannot consume this service")
        return
    sent = "".join(f"{n.decode()}: {v.decode()}" for n, v in k.service_request.set_headers.items())
    assert sent == outcome
