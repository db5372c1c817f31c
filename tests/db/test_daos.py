"""``gateway/db/daos.py``: the entity-specific DAO rules, on both databases."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize("body", [
    {"json": {}},
    {"json": {"config": {"allow": ["b"]}}},
    {"content": "", "headers": {"content-type": "application/x-www-form-urlencoded"}},
])
async def test_put_of_a_plugin_without_name_is_a_schema_violation(
        admin: httpx.AsyncClient, body: dict[str, object]) -> None:
    """Found by schemathesis (issue 9's fourth 500): PUT replaces the row, so a body without
    ``name`` is Kong's 400, not the stored plugin's name half-applied (a KeyError, a 500)."""
    created = await admin.post("/plugins", json={"name": "acl", "instance_name": "p",
                                                 "config": {"allow": ["a"]}})
    assert created.status_code == 201, created.text
    for key in ("p", created.json()["id"]):
        response = await admin.put(f"/plugins/{key}", **body)  # type: ignore[arg-type]
        assert response.status_code == 400, response.text
        assert response.json()["fields"] == {"name": "required field missing"}
    assert (await admin.get("/plugins/p")).json() == created.json()
    patched = await admin.patch("/plugins/p", json={"config": {"allow": ["b"]}})
    assert patched.status_code == 200 and patched.json()["name"] == "acl"
