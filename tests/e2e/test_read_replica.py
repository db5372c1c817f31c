"""A streaming replica (``pg_basebackup`` from a private primary) as ``database_ro``: reloaders
read it, the Admin API writes the primary, changes still propagate; a replica that stops
replaying never makes the node apply an older version (it reads the primary after a bounded
wait)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.proc import free_port, wait_for
from tests.e2e.test_resilience import AS_PG, PG_BIN, PrivatePostgres, private_postgres, route_to

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def streaming_replica(primary: PrivatePostgres) -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="ramparts-pg-replica-", dir="/tmp"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir(mode=0o700)
    if AS_PG:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run([*AS_PG, str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p",
                    str(primary.port), "-U", "postgres", "-D", str(data), "-R", "-X",
                    "stream", "--no-sync"], check=True, capture_output=True, timeout=120)
    replica = PrivatePostgres(data, free_port())
    replica.start()
    try:
        yield replica
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            replica.ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def sql(url: str, statement: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await conn.fetchval(statement)
        finally:
            await conn.close()

    return asyncio.run(run())


class AppliedVersions:
    """Samples the node's applied version while a test runs (bounded in time)."""

    def __init__(self, gw: Node) -> None:
        self.gw = gw
        self.seen: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AppliedVersions:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                self.seen.append(int(self.gw.call("GET", "/status").json()
                                     ["applied_configuration_version"]))
            time.sleep(0.02)


def test_changes_propagate_through_a_streaming_replica(tmp_path: Path) -> None:
    with private_postgres() as primary, streaming_replica(primary) as replica, \
            upstream("replicated") as up, \
            node(tmp_path, primary.url, database_ro=replica.url, database_ro_wait=0.5) as gw:
        assert sql(replica.url, "SELECT pg_is_in_recovery()") is True
        route_to(gw, up, "/first")
        assert "read from the read replica" in gw.running.output()
        # the replica stops replaying: writes still go live (from the primary, after the
        # bounded wait), and the node never applies an older version meanwhile
        sql(replica.url, "SELECT pg_wal_replay_pause()")
        with AppliedVersions(gw) as versions:
            route_to(gw, up, "/second")
            route_to(gw, up, "/third")
            sql(replica.url, "SELECT pg_wal_replay_resume()")
            route_to(gw, up, "/fourth")
        assert "behind the primary" in gw.running.output()
        assert versions.seen and versions.seen == sorted(versions.seen)
        for path in ("/first", "/second", "/third", "/fourth"):
            assert gw.proxy(path).status_code == 200, path
        stored = gw.call("GET", "/status").json()["configuration_version"]
        wait_for(lambda: sql(replica.url, "SELECT value FROM ramparts_meta WHERE key = "
                             "'config_version'") == stored, 10, "the replica to catch up")
