"""The reloader: watch the config version, rebuild the snapshot off the loop, swap it in.

Wake-ups come from three places: a local write (the store's commit hook), PostgreSQL
``NOTIFY`` from any node, and a poll every ``frequency`` seconds (the fallback that also
covers SQLite and lost notifications). A failed build keeps the previous snapshot; a database
outage keeps the proxy serving the last good snapshot until the database returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.db.engine import database_name
from gateway.db.load import load_all
from gateway.db.rowcache import RowCache
from gateway.db.store import NOTIFY_CHANNEL, Store
from gateway.plugins.handlers import HANDLERS
from gateway.plugins.runtime import Handler
from gateway.reuse import Reuse
from gateway.snapcache import SnapshotCache
from gateway.snapshot import Holder, Loaded, Snapshot, build_snapshot
from gateway.tasks import spawn
from gateway.tls.client import ClientDefaults

log = logging.getLogger("ramparts.reload")

LISTEN_APPLICATION = "ramparts-listen"  # the LISTEN session in pg_stat_activity
RETRY_FAILED_BUILD = 15.0  # seconds between rebuilds (and error lines) of a failing version


@dataclass(frozen=True, slots=True)
class BuildFailure:
    """A stored configuration version this node cannot build (it serves an older one)."""

    version: int
    error: str


class Reloader:
    def __init__(self, store: Store, holder: Holder, *, frequency: float = 0.1,
                 client: ClientDefaults | None = None,
                 handlers: Mapping[str, type[Handler]] | None = None,
                 prepare: Sequence[Callable[[Snapshot], object]] = (),
                 after_swap: Sequence[Callable[[Snapshot], object]] = (),
                 retry_failed: float = RETRY_FAILED_BUILD, listen: bool = True,
                 cache: SnapshotCache | None = None, replica: Store | None = None,
                 replica_wait: float = 1.0) -> None:
        """``prepare`` hooks run in the build thread before a swap (contexts, pools);
        ``after_swap`` hooks run on the loop once the new snapshot is live. A version that
        fails to build is rebuilt every ``retry_failed`` seconds, each failure logged at
        error level, until it builds or a newer version replaces it. ``listen=False`` leaves out
        PostgreSQL's LISTEN (tests prove that polling alone converges). ``cache`` is
        rewritten after each load that goes live (the last-good snapshot cache).
        With a ``replica`` (``database_ro``) loads read it once it has replayed the primary's
        version, waiting at most ``replica_wait`` seconds before reading the primary."""
        self.store = store
        self.holder = holder
        self.frequency = frequency
        self.client = client
        self.handlers = handlers if handlers is not None else HANDLERS
        self.prepare_hooks = tuple(prepare)
        self.after_swap = tuple(after_swap)
        self.retry_failed = retry_failed
        self.failure: BuildFailure | None = None  # read by /status
        self.applied_at: float | None = None  # wall clock of the last swap (heartbeat)
        self.listen = listen
        self.cache = cache
        self.replica = replica
        self.replica_wait = replica_wait
        self._wake = asyncio.Event()
        self._failed_version: int | None = None
        self._failed_at = 0.0
        self._db_down_since: float | None = None
        self._stopping = False
        self._listening = False  # a healthy LISTEN connection: polling can slow down
        self._last_signature: tuple[object, ...] | None = None
        self._sqlite_path = database_name(store.url) if store.dialect == "sqlite" else None
        store.on_commit.append(self._wake.set)
        self._forced = False
        # rows of the previous load, reused when unchanged (a reload converts what changed)
        self.rows = RowCache()
        self.parts = Reuse()  # and what the previous build derived from them

    def wake(self) -> None:
        """Look for a new version now (a write was committed elsewhere on this node)."""
        self._wake.set()

    def refresh(self) -> None:
        """Rebuild at the next wake-up although the version did not move (the keyring
        changed: rows this node could not decrypt may now be served)."""
        self._forced = True
        self._wake.set()

    # ------------------------------------------------------------------ one reload
    async def check(self) -> bool:
        """The cheap poll: on SQLite a stat of the database files first (microseconds, no
        query unless they changed), then one version read; a full load only when it moved
        (or when a version that failed to build is due to be tried again)."""
        if self._forced:
            self._forced = False
            self.rows.clear()  # rows this node could not open (or opened differently)
            try:
                return await self.reload(force=True)
            except Exception:
                self._forced = True  # the database is down: rebuild once it answers
                raise
        retry = self._failed_version is not None and \
            time.monotonic() - self._failed_at >= self.retry_failed
        signature = self._files_signature()
        if signature is not None and signature == self._last_signature and not retry:
            return False
        version = await self.store.config_version()
        if retry:
            self._failed_version = None
        if version in (self.holder.current.version, self._failed_version):
            self._last_signature = signature
            return False
        changed = await self.reload()
        # remembered only once the load worked: a load that failed (database locked by a
        # writer, say) must be tried again on the next poll, not wait for another write
        self._last_signature = signature
        return changed

    async def reload(self, force: bool = False) -> bool:
        """Load and build; swap only on success. Returns whether a new snapshot is live."""
        loaded = await self._load()
        applied = await self.apply(loaded, force)
        if applied and self.cache is not None:
            await self._save(self.cache, loaded)
        return applied

    async def _load(self) -> Loaded:
        """One consistent read: from the replica when it has caught up with the primary's
        version (replicas deliver no NOTIFY and may lag), else from the primary."""
        replica = self.replica
        if replica is None:
            return await load_all(self.store, cache=self.rows)
        target = await self.store.config_version()
        replica.keyring = self.store.keyring  # the keyring can change while we run
        deadline = time.monotonic() + self.replica_wait
        seen: int | str = "unreachable"
        while True:
            try:
                # bounded even when the replica hangs (a connect that is never answered)
                seen = await asyncio.wait_for(replica.config_version(),
                                              max(0.01, deadline - time.monotonic()))
                if seen >= target:
                    loaded = await load_all(replica, cache=self.rows)
                    log.info("configuration version %d read from the read replica",
                             loaded.version)
                    return loaded
            except Exception as exc:
                seen = f"unreachable ({_first_line(exc)})"
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(0.05, self.replica_wait))
        log.warning("the read replica is at version %s, behind the primary's %d after %.1f s: "
                    "reading the primary", seen, target, self.replica_wait)
        return await load_all(self.store, cache=self.rows)

    async def _save(self, cache: SnapshotCache, loaded: Loaded) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, cache.write, loaded)
        except Exception as exc:  # the live snapshot matters more than its copy on disk
            log.warning("cannot write the snapshot cache %s: %s", cache.path, exc)

    async def apply(self, loaded: Loaded, force: bool = False) -> bool:
        """Build ``loaded`` and swap it in, unless it is older than what is live: a node
        never goes backwards (a lagging replica, a stale cache), not even when forced."""
        if loaded.version < self.holder.current.version or \
                (loaded.version == self.holder.current.version and not force):
            return False
        if loaded.version == self._failed_version and not force:
            return False  # this version failed to build; wait for the next change
        started = time.monotonic()
        try:
            snapshot = await asyncio.get_running_loop().run_in_executor(None, self._build,
                                                                        loaded)
        except Exception as exc:
            self._failed(loaded.version, exc)
            return False
        self.holder.current = snapshot
        self.applied_at = time.time()
        self._failed_version = None
        self.failure = None
        self._run_after_swap(snapshot)
        log.info("configuration version %d live (%d routes, %d SNIs) in %.0f ms (rows read: "
                 "%d, opened anew: %d, reused: %d; tables read whole: %s; rebuilt: %s)",
                 snapshot.version, len(snapshot.router), len(snapshot.certs.names),
                 (time.monotonic() - started) * 1000, self.rows.read_rows,
                 self.rows.converted, self.rows.reused, ", ".join(self.rows.whole) or "none",
                 ", ".join(self.parts.rebuilt) or "none")
        return True

    def _failed(self, version: int, exc: Exception) -> None:
        """Keep serving the last good snapshot; say why at error level, with the traceback
        the first time only (the retries repeat the line, not the stack)."""
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        first = self.failure is None or self.failure.version != version
        self.failure = BuildFailure(version, error)
        self._failed_version = version
        self._failed_at = time.monotonic()
        log.error("configuration version %d cannot be built (%s); still serving version %d",
                  version, error, self.holder.current.version, exc_info=exc if first else None)

    def _run_after_swap(self, snapshot: Snapshot) -> None:
        # the snapshot is live already: a failing hook must not look like a database outage
        for hook in self.after_swap:
            try:
                hook(snapshot)
            except Exception:
                log.exception("applying configuration version %d: %s failed",
                              snapshot.version, getattr(hook, "__name__", hook))

    def _build(self, loaded: Loaded) -> Snapshot:
        # runs in a worker thread: nothing here touches the event loop
        snapshot = build_snapshot(loaded, client=self.client, handlers=self.handlers,
                                  reuse=self.parts)
        for hook in self.prepare_hooks:
            hook(snapshot)
        return snapshot

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        if self.store.dialect == "postgresql" and self.listen:
            spawn(self._listen(), "reloader-listen")
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval())
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.check()
            except Exception as exc:  # an outage must never stop the loop
                self._outage(exc)
            else:
                self._recovered()

    def _files_signature(self) -> tuple[object, ...] | None:
        if self._sqlite_path is None:
            return None
        out: list[object] = []
        for path in (self._sqlite_path, self._sqlite_path + "-wal"):
            try:
                st = os.stat(path)
            except OSError:
                out.append(None)
            else:
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _interval(self) -> float:
        if self._db_down_since is not None:
            return min(5.0, max(self.frequency, time.monotonic() - self._db_down_since) / 2)
        if self._listening:
            return max(self.frequency, 1.0)  # NOTIFY wakes us; the poll is only a fallback
        return self.frequency

    def _outage(self, exc: BaseException) -> None:
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            log.warning("cannot read the configuration (%s); serving version %d until the "
                        "database answers again", str(exc).splitlines()[0] if str(exc) else
                        type(exc).__name__, self.holder.current.version)

    def _recovered(self) -> None:
        if self._db_down_since is not None:
            log.warning("database reachable again after %.1f s",
                        time.monotonic() - self._db_down_since)
            self._db_down_since = None

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL; reconnects after failures (polling covers the gap)."""
        dsn = self.store.url.replace("postgresql+asyncpg://", "postgresql://")
        while not self._stopping:
            conn: Any = None
            try:
                # named, so operators (and tests) see which sessions listen
                conn = await asyncpg.connect(dsn, timeout=5, server_settings={
                    "application_name": LISTEN_APPLICATION})
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                self._listening = True
                self._wake.set()  # catch up on anything missed while disconnected
                while not self._stopping:
                    await asyncio.sleep(5)
                    await conn.fetchval("SELECT 1")  # an idle socket misses a dead server
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                pass
            finally:
                self._listening = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            if not self._stopping:
                await asyncio.sleep(1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
