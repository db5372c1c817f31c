"""``admin/http.py``: per-path method dispatch with Kong's OPTIONS/HEAD/405 behaviour."""

from __future__ import annotations

import httpx


async def test_a_405_lists_the_allowed_methods(admin: httpx.AsyncClient) -> None:
    """RFC 9110 (found by schemathesis): a 405 carries ``Allow``, as OPTIONS does."""
    response = await admin.request("TRACE", "/services")
    assert response.status_code == 405
    assert response.json() == {"message": "Method not allowed"}
    assert response.headers["allow"] == (await admin.options("/services")).headers["allow"]
