"""The reloader's row cache: a load with it serves exactly what a fresh load serves, while
unchanged rows come back as the very objects of the previous load (nothing re-converted)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from gateway.db.load import load_all
from gateway.db.rowcache import RowCache, _hex_uuid
from gateway.db.store import Store
from tests.conftest import wipe
from tests.pki import ec_pair


def by_id(rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {name: {r["id"]: dict(r) for r in table} for name, table in rows.items()}


async def same_as_fresh(store: Store, cache: RowCache) -> dict[str, list[Any]]:
    cached = await load_all(store, cache=cache)
    fresh = await load_all(store)
    assert cached.version == fresh.version
    assert by_id(cached.rows) == by_id(fresh.rows)
    return {name: list(rows) for name, rows in cached.rows.items()}


async def test_unchanged_rows_are_reused_and_changes_are_seen(store: Store) -> None:
    await wipe(store)
    services, certificates = store.dao("services"), store.dao("certificates")
    a = await services.insert({"name": "a", "host": "a.test"})
    b = await services.insert({"name": "b", "host": "b.test"})
    cert, key = ec_pair("one.test")
    c = await certificates.insert({"cert": cert, "key": key, "snis": ["one.test"]})
    cache = RowCache()
    first = await same_as_fresh(store, cache)
    assert cache.converted == 4 and cache.reused == 0  # two services, a certificate, a SNI

    second = await same_as_fresh(store, cache)
    assert cache.converted == 0
    for name, rows in first.items():
        if name != "target_health":
            assert all(x is y for x, y in zip(rows, second[name], strict=True)), name

    cert2, key2 = ec_pair("two.test")
    await certificates.update(c["id"], {"cert": cert2, "key": key2})
    await services.delete(b["id"])
    d = await services.insert({"name": "d", "host": "d.test"})
    third = await same_as_fresh(store, cache)
    assert cache.converted == 2  # the changed certificate and the new service
    [row] = third["certificates"]
    assert row["cert"] == cert2 and row is not first["certificates"][0]
    assert {s["id"] for s in third["services"]} == {a["id"], d["id"]}
    kept = next(s for s in third["services"] if s["id"] == a["id"])
    assert kept is next(s for s in first["services"] if s["id"] == a["id"])

    cache.clear()  # the keyring changed: everything is opened again
    await same_as_fresh(store, cache)
    assert cache.reused == 0 and cache.converted == 4


async def test_every_column_type_converts_as_a_typed_read_does(store: Store) -> None:
    """Arrays, maps, JSON records, booleans, floats, foreign keys: rows converted from the
    raw read equal those of the typed read, on both databases."""
    await wipe(store)
    service = await store.dao("services").insert({"name": "s", "url": "https://s.test:8443/p",
                                                  "tls_verify": True})
    await store.dao("routes").insert({"name": "r", "paths": ["/a", "~/b$"], "methods": ["GET"],
                                      "headers": {"x-v": ["1", "2"]}, "strip_path": False,
                                      "service": {"id": service["id"]}})
    upstream = await store.dao("upstreams").insert({"name": "u"})
    await store.dao("targets").insert({"target": "127.0.0.1:80", "weight": 7,
                                       "upstream": {"id": upstream["id"]}})
    consumer = await store.dao("consumers").insert({"username": "c", "tags": ["t1"]})
    await store.dao("acls").insert({"group": "g", "consumer": {"id": consumer["id"]}})
    await store.dao("plugins").insert({"name": "acl", "config": {"allow": ["g"]},
                                       "service": {"id": service["id"]}})
    cache = RowCache()
    await same_as_fresh(store, cache)
    await same_as_fresh(store, cache)
    assert cache.converted == 0


@pytest.mark.parametrize("value", [uuid.uuid4().hex, uuid.uuid4().hex.upper(),
                                   str(uuid.uuid4()), "{" + str(uuid.uuid4()) + "}"],
                         ids=["hex", "upper", "dashed", "braced"])  # fixed ids: xdist
def test_sqlite_uuids_convert_as_sqlalchemy_does(value: str) -> None:
    assert _hex_uuid(value) == str(uuid.UUID(value))
