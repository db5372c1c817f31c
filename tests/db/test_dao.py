"""``gateway/db/dao.py``: the generic write path, on both databases."""

from __future__ import annotations

import httpx
import pytest

from gateway.schema.validate import is_uuid


@pytest.mark.parametrize("body", [
    {"content": "id=&username=a", "headers": {"content-type":
                                              "application/x-www-form-urlencoded"}},
    {"json": {"id": None, "username": "a"}},
])
async def test_a_null_id_on_create_is_generated(admin: httpx.AsyncClient,
                                                body: dict[str, object]) -> None:
    """Found by schemathesis: ``id=`` in a form (null) reached the INSERT as NULL: a 500."""
    response = await admin.post("/consumers", **body)  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    assert is_uuid(response.json()["id"])
    assert (await admin.get("/consumers/a")).json()["id"] == response.json()["id"]
