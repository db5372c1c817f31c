"""The change log (migration 0007, gateway/db/changes.py): a reload with a row cache reads only
the rows written since the version it holds, sees every write path, and falls back to reading
tables whole whenever the log cannot be trusted. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml
from alembic import command

from gateway.db import changes, migrate, tables
from gateway.db.load import SNAPSHOT_ENTITIES, load_all
from gateway.db.rowcache import RowCache
from gateway.db.store import Store, read_version
from gateway.declarative import dbio
from gateway.declarative.parse import parse_text
from gateway.snapshot import Loaded
from tests.conftest import wipe
from tests.pki import ec_pair


def by_id(loaded: Loaded) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: {r.get("id", r.get("target_id")): dict(r) for r in rows}
            for name, rows in loaded.rows.items()}


async def follows(store: Store, cache: RowCache) -> int:
    """One load through the change log (no table read whole) that serves exactly what a fresh
    load serves; returns the rows it read from the database."""
    cached = await load_all(store, cache=cache)
    fresh = await load_all(store)
    assert cached.version == fresh.version
    assert by_id(cached) == by_id(fresh)
    assert cache.whole == [], cache.whole
    return cache.read_rows


async def certificates(store: Store, count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        cert, key = ec_pair(f"c{i}.test")
        out.append(await store.dao("certificates").insert(
            {"cert": cert, "key": key, "snis": [f"c{i}.test"]}))
    return out


async def test_one_changed_certificate_is_the_only_row_read(store: Store) -> None:
    await wipe(store)
    made = await certificates(store, 12)
    cache = RowCache()
    await load_all(store, cache=cache)
    assert set(cache.whole) == set(SNAPSHOT_ENTITIES)  # the first load reads everything
    assert cache.read_rows == 24
    assert await follows(store, cache) == 0  # nothing changed: nothing read

    cert, key = ec_pair("c3.test")
    before = await load_all(store, cache=cache)
    await store.dao("certificates").update(made[3]["id"], {"cert": cert, "key": key})
    assert await follows(store, cache) == 1
    assert cache.converted == 1 and cache.reused == 23
    after = await load_all(store, cache=cache)
    assert after.rows["snis"] is before.rows["snis"]  # an unchanged table: the same list
    assert after.rows["certificates"] is not before.rows["certificates"]


async def test_deletes_and_cascades_propagate(store: Store) -> None:
    await wipe(store)
    made = await certificates(store, 3)
    consumer = await store.dao("consumers").insert({"username": "c"})
    await store.dao("acls").insert({"group": "g", "consumer": {"id": consumer["id"]}})
    cache = RowCache()
    await load_all(store, cache=cache)

    await store.dao("certificates").delete(made[0]["id"])  # its SNI goes with it
    await store.dao("consumers").delete(consumer["id"])  # and its ACL
    assert await follows(store, cache) == 0  # deletes read from the log, no rows
    loaded = await load_all(store, cache=cache)
    assert len(loaded.rows["certificates"]) == 2 and len(loaded.rows["snis"]) == 2
    assert loaded.rows["acls"] == [] and loaded.rows["consumers"] == []


async def test_every_write_path_is_seen(admin: httpx.AsyncClient, store: Store) -> None:
    cache = RowCache()
    await load_all(store, cache=cache)
    # the Admin API
    r = await admin.post("/services", json={"name": "s", "host": "s.test"})
    assert r.status_code == 201, r.text
    r = await admin.post("/services/s/routes", json={"name": "r", "paths": ["/r"]})
    assert r.status_code == 201, r.text
    assert await follows(store, cache) == 2
    r = await admin.patch("/routes/r", json={"paths": ["/r2"]})
    assert r.status_code == 200, r.text
    assert await follows(store, cache) == 1
    r = await admin.delete("/routes/r")
    assert r.status_code == 204, r.text
    assert await follows(store, cache) == 0
    # `ramparts config db_import` (upserts in bulk)
    doc = {"_format_version": "3.0", "services": [
        {"name": "imported", "host": "i.test", "routes": [{"name": "ir", "paths": ["/i"]}]}]}
    await dbio.db_import(store, parse_text(store, yaml.safe_dump(doc)))
    assert await follows(store, cache) == 2
    # the declarative configuration replacing everything (DB-less POST /config's path)
    doc["services"] = [{"name": "other", "host": "o.test"}]
    await dbio.replace(store, parse_text(store, yaml.safe_dump(doc)))
    assert await follows(store, cache) == 1
    loaded = await load_all(store, cache=cache)
    assert [s["name"] for s in loaded.rows["services"]] == ["other"]
    assert loaded.rows["routes"] == []


async def test_a_table_without_its_triggers_is_read_whole(empty: Store) -> None:
    await empty.dao("services").insert({"name": "a", "host": "a.test"})
    cache = RowCache()
    await load_all(empty, cache=cache)
    async with empty.engine.begin() as conn:
        if empty.dialect == "postgresql":
            await conn.execute(sa.text('DROP TRIGGER ramparts_changed ON "services"'))
        else:
            await conn.execute(sa.text("DROP TRIGGER ramparts_changed_services_update"))
    await empty.dao("services").update((await load_all(empty)).rows["services"][0]["id"],
                                     {"host": "b.test"})
    loaded = await load_all(empty, cache=cache)
    assert cache.whole == ["services"]
    assert loaded.rows["services"][0]["host"] == "b.test"


async def test_a_row_the_log_missed_is_caught_by_the_count(empty: Store) -> None:
    """A write that bypassed the store (no version bump): the log stamps it with the version
    the cache holds already; the row count disagrees and the table is read whole."""
    await empty.dao("services").insert({"name": "a", "host": "a.test"})
    cache = RowCache()
    await load_all(empty, cache=cache)
    await empty.dao("services").insert({"name": "b", "host": "b.test"})
    await follows(empty, cache)
    async with empty.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM services WHERE name = 'b'"))
    # no version bump: the reloader would not even look; a forced load must still be right
    loaded = await load_all(empty, cache=cache)
    assert [s["name"] for s in loaded.rows["services"]] == ["a"]


async def test_migrating_down_and_up_reads_everything_once(empty: Store) -> None:
    await certificates(empty, 2)
    cache = RowCache()
    await load_all(empty, cache=cache)
    await _alembic(empty, "downgrade", "0006")
    await empty.dao("services").insert({"name": "unlogged", "host": "u.test"})  # no triggers
    await _alembic(empty, "upgrade", "head")
    loaded = await load_all(empty, cache=cache)  # a new epoch: the log is not trusted
    assert set(cache.whole) == set(SNAPSHOT_ENTITIES)
    assert [s["name"] for s in loaded.rows["services"]] == ["unlogged"]
    assert await follows(empty, cache) == 0  # and followed again from there


async def test_an_older_database_is_read_whole_never_merged(empty: Store, tmp_path: Path
                                                            ) -> None:
    """A cache ahead of the database it reads (a restored backup, a replica behind the
    primary the cache last read): the version went back, so the log is not used."""
    a = await empty.dao("services").insert({"name": "a", "host": "a.test"})
    cache = RowCache()
    ahead = await load_all(empty, cache=cache)
    async with empty.engine.begin() as conn:  # the database as a backup would bring it back
        await conn.execute(sa.text("UPDATE ramparts_meta SET value = value - 1 "
                                   "WHERE key = 'config_version'"))
        await conn.execute(sa.text("UPDATE services SET host = 'old.test'"))
    loaded = await load_all(empty, cache=cache)
    assert loaded.version == ahead.version - 1
    assert set(cache.whole) == set(SNAPSHOT_ENTITIES)
    assert [(s["id"], s["host"]) for s in loaded.rows["services"]] == [(a["id"], "old.test")]


async def _alembic(store: Store, action: str, target: str) -> None:
    def run(sync_conn: sa.Connection) -> None:
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = sync_conn
        getattr(command, action)(cfg, target)

    async with store.engine.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()




async def test_pruned_tombstones_make_older_copies_read_everything(empty: Store) -> None:
    services = empty.dao("services")
    a = await services.insert({"name": "a", "host": "a.test"})
    old_enough = RowCache()
    await load_all(empty, cache=old_enough)  # a copy from before the delete
    await services.delete(a["id"])
    recent = RowCache()
    await load_all(empty, cache=recent)
    await services.insert({"name": "b", "host": "b.test"})
    async with empty.write() as conn:  # as every PRUNE_EVERY-th write does
        version = await read_version(conn)
        await changes.prune(conn, version, keep=2)  # up to the delete (version - 2)
        tombstones = (await conn.execute(sa.select(tables.changes).where(
            tables.changes.c.deleted))).all()
    assert tombstones == []
    assert await follows(empty, recent) == 1  # newer than the horizon: follows the log
    loaded = await load_all(empty, cache=old_enough)  # older: reads everything
    assert set(old_enough.whole) == set(SNAPSHOT_ENTITIES)
    assert [s["name"] for s in loaded.rows["services"]] == ["b"]


async def test_every_thousandth_write_prunes_old_tombstones(empty: Store) -> None:
    services = empty.dao("services")
    await services.delete((await services.insert({"name": "a", "host": "a.test"}))["id"])
    next_version = changes.PRUNE_EVERY + changes.KEEP_VERSIONS
    async with empty.engine.begin() as conn:
        await conn.execute(sa.update(tables.meta).where(tables.meta.c.key == "config_version")
                           .values(value=next_version - 1))
    await services.insert({"name": "b", "host": "b.test"})
    async with empty.read() as conn:
        _, horizon = await changes.state(conn)
        assert horizon == changes.PRUNE_EVERY  # the tombstones up to it are gone
        deleted = await conn.execute(sa.select(tables.changes).where(tables.changes.c.deleted))
        assert deleted.all() == []
