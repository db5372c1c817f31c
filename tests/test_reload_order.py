"""A node never goes backwards: an older load (a lagging replica, a stale cache) is never
applied, not even by a forced rebuild."""

from __future__ import annotations

from gateway.db.load import load_all
from gateway.db.store import Store
from gateway.reload import Reloader
from gateway.snapshot import Holder, Loaded
from tests.conftest import wipe


async def test_an_older_version_is_never_applied(store: Store) -> None:
    await wipe(store)
    reloader = Reloader(store, Holder())
    try:
        async with store.write():
            pass
        assert await reloader.reload()
        current = reloader.holder.current.version
        assert reloader.applied_at is not None
        rows = (await load_all(store)).rows
        older = Loaded(version=current - 1, rows=rows)
        assert not await reloader.apply(older)
        assert not await reloader.apply(older, force=True)
        assert reloader.holder.current.version == current
        assert await reloader.apply(Loaded(version=current + 1, rows=rows))
        assert reloader.holder.current.version == current + 1
    finally:
        store.on_commit.remove(reloader._wake.set)
