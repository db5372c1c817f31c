"""``admin/entities.py``: the generated endpoints' edge cases, on both databases."""

from __future__ import annotations

import httpx


async def test_put_to_a_parent_the_row_may_not_have_creates_nothing(
        admin: httpx.AsyncClient) -> None:
    """Found by schemathesis: ``PUT /plugins/{p}/consumer`` on a plugin that cannot be scoped
    to a consumer created the consumer, then refused the link (400) and left it behind."""
    plugin = await admin.post("/plugins", json={"name": "acl", "config": {"allow": ["a"]}})
    pid = plugin.json()["id"]
    response = await admin.put(f"/plugins/{pid}/consumer", json={"username": "orphan"})
    assert response.status_code == 400, response.text
    assert response.json()["fields"] == {"consumer": "value must be null"}
    assert (await admin.get("/consumers")).json()["data"] == []
    assert (await admin.get(f"/plugins/{pid}")).json() == plugin.json()


async def test_put_to_an_unset_parent_creates_and_links_it(admin: httpx.AsyncClient) -> None:
    route = await admin.post("/routes", json={"name": "r", "paths": ["/r"]})
    assert route.status_code == 201
    response = await admin.put("/routes/r/service", json={"name": "s", "host": "a.test"})
    assert response.status_code == 200, response.text
    assert (await admin.get("/routes/r")).json()["service"] == {"id": response.json()["id"]}
