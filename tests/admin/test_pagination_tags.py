"""Pagination (size, opaque offset, next) and tag filters, as Kong answers them."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest


async def seed(admin: httpx.AsyncClient) -> None:
    for i, tags in enumerate([["a"], ["a", "b"], ["b"], ["c"], ["a", "c"]]):
        r = await admin.post("/services", json={"name": f"s{i}", "host": "h", "tags": tags})
        assert r.status_code == 201


async def test_pages_walk_every_row_once(admin: httpx.AsyncClient) -> None:
    await seed(admin)
    seen: list[str] = []
    url: str | None = "/services?size=2"
    pages = 0
    while url:
        body = (await admin.get(url)).json()
        seen.extend(s["name"] for s in body["data"])
        if body["next"] is None:
            assert "offset" not in body
        else:
            query = parse_qs(urlsplit(body["next"]).query)
            assert query["offset"] == [body["offset"]] and query["size"] == ["2"]
        url = body["next"]
        pages += 1
    assert pages == 3 and sorted(seen) == [f"s{i}" for i in range(5)]
    ids = [s["id"] for s in (await admin.get("/services")).json()["data"]]
    assert ids == sorted(ids)  # Kong pages in primary-key order


@pytest.mark.parametrize(("query", "names"), [
    ("tags=a", {"s0", "s1", "s4"}),
    ("tags=a,b", {"s1"}),
    ("tags=a/b", {"s0", "s1", "s2", "s4"}),
    ("tags=c,a", {"s4"}),
    ("tags=zzz", set()),
])
async def test_tag_filters(admin: httpx.AsyncClient, query: str, names: set[str]) -> None:
    await seed(admin)
    body = (await admin.get(f"/services?{query}")).json()
    assert {s["name"] for s in body["data"]} == names


async def test_next_keeps_tags_and_size(admin: httpx.AsyncClient) -> None:
    await seed(admin)
    body = (await admin.get("/services?tags=a&size=1")).json()
    assert body["next"].startswith("/services?offset=")
    assert body["next"].endswith("&tags=a&size=1")


@pytest.mark.parametrize(("query", "body"), [
    ("size=abc", {"code": 9, "name": "invalid size", "message": "size must be a number"}),
    ("size=0", {"code": 9, "name": "invalid size",
                "message": "size must be an integer between 1 and 1000"}),
    ("size=1001", {"code": 9, "name": "invalid size",
                   "message": "size must be an integer between 1 and 1000"}),
    ("offset=x", {"code": 7, "name": "invalid offset",
                  "message": "'x' is not a valid offset: bad base64 encoding"}),
    ("tags=a,b/c", {"code": 11, "name": "invalid options",
                    "message": "invalid option (tags: invalid filter syntax)",
                    "options": {"tags": "invalid filter syntax"}}),
    ("tags=", {"code": 11, "name": "invalid options",
               "message": "invalid option (tags: cannot be null)",
               "options": {"tags": "cannot be null"}}),
    ("tags=a,b,c,d,e,f", {"code": 11, "name": "invalid options",
                          "message": "invalid option (tags: cannot query more than 5 tags)",
                          "options": {"tags": "cannot query more than 5 tags"}}),
])
async def test_bad_list_options(admin: httpx.AsyncClient, query: str,
                                body: dict[str, object]) -> None:
    r = await admin.get(f"/services?{query}")
    assert r.status_code == 400 and r.json() == body


async def test_nested_next_has_no_size(admin: httpx.AsyncClient) -> None:
    await admin.post("/services", json={"name": "s", "host": "h"})
    for i in range(3):
        await admin.post("/services/s/routes", json={"paths": [f"/p{i}"]})
    body = (await admin.get("/services/s/routes?size=2&tags=ignored")).json()
    assert len(body["data"]) == 2
    assert body["next"] == f"/services/s/routes?offset={quote(body['offset'], safe='')}"


async def test_tags_endpoints(admin: httpx.AsyncClient) -> None:
    await seed(admin)
    body = (await admin.get("/tags")).json()
    assert len(body["data"]) == 7
    assert set(body["data"][0]) == {"entity_name", "entity_id", "tag"}
    body = (await admin.get("/tags/a?size=2")).json()
    assert len(body["data"]) == 2 and body["next"].startswith("/tags/a?offset=")
    rest = (await admin.get(body["next"])).json()
    assert len(rest["data"]) == 1 and rest["next"] is None
    assert {row["entity_name"] for row in body["data"] + rest["data"]} == {"services"}
    r = await admin.get("/tags/a,b")
    assert r.status_code == 400 and r.json()["name"] == "invalid unique tag"
    for offset in ("W251bGwsIG51bGxd", "WyJ4IiwgInkiXQ", "ImFiIg"):  # decodes; not ours
        r = await admin.get(f"/tags?offset={offset}")
        assert r.status_code == 400 and r.json()["code"] == 7, (offset, r.text)
