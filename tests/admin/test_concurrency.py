"""Parallel writes: nothing lost, duplicates are 409s, never a 500."""

from __future__ import annotations

import asyncio

import httpx


async def test_fifty_parallel_posts(admin: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*(
        admin.post("/services", json={"name": f"svc-{i}", "host": f"h{i}.internal"})
        for i in range(50)))
    assert [r.status_code for r in results] == [201] * 50
    listing = (await admin.get("/services?size=1000")).json()["data"]
    assert sorted(s["name"] for s in listing) == sorted(f"svc-{i}" for i in range(50))


async def test_fifty_parallel_duplicates(admin: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*(
        admin.post("/consumers", json={"username": "same"}) for _ in range(50)))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 49
    assert len((await admin.get("/consumers")).json()["data"]) == 1


async def test_parallel_mixed_writes(admin: httpx.AsyncClient) -> None:
    await admin.post("/services", json={"name": "s", "host": "h"})
    results = await asyncio.gather(*(
        admin.post("/services/s/routes", json={"name": f"r{i}", "paths": [f"/p{i}"]})
        if i % 2 else admin.patch("/services/s", json={"retries": i})
        for i in range(50)))
    assert all(r.status_code in (200, 201) for r in results), [r.text for r in results
                                                               if r.status_code >= 300]
    assert len((await admin.get("/services/s/routes?size=1000")).json()["data"]) == 25


async def test_parallel_puts_of_one_new_name(admin: httpx.AsyncClient) -> None:
    # Kong's PUT by name is an upsert: repeating it at once is safe, one row results
    results = await asyncio.gather(*(
        admin.put("/services/svc0", json={"host": f"h{i}.internal"}) for i in range(10)))
    assert [r.status_code for r in results] == [200] * 10, [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert len((await admin.get("/services")).json()["data"]) == 1
