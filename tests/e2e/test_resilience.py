"""The proxy keeps serving the last good configuration: through a database outage (a private
PostgreSQL instance this test stops and restarts) and through a configuration that fails to
build."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.loops import RequestLoop
from tests.e2e.proc import free_port, wait_for

pytestmark = pytest.mark.e2e

def _pg_bin() -> Path:
    """The server binaries of the newest PostgreSQL Debian installs (initdb is not on PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
# initdb refuses to run as root: as root, run the server as the `postgres` user
AS_PG = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PrivatePostgres:
    data: Path
    port: int

    def ctl(self, *args: str) -> None:
        subprocess.run([*AS_PG, str(PG_BIN / "pg_ctl"), "-D",
                        str(self.data), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self.ctl("-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off", "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries are required in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="ramparts-pg-", dir="/tmp"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    if AS_PG:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run([*AS_PG, str(PG_BIN / "initdb"), "-D", str(data),
                    "-A", "trust", "-U", "postgres", "--no-sync"], check=True,
                   capture_output=True, timeout=120)
    pg = PrivatePostgres(data, free_port())
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg.ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def route_to(gw: Node, up: int, path: str) -> None:
    name = path.strip("/")
    assert gw.call("PUT", f"/services/{name}", json={"url": f"http://127.0.0.1:{up}"}
                   ).status_code == 200
    assert gw.call("PUT", f"/routes/{name}", json={"paths": [path],
                                                   "service": {"name": name}}
                   ).status_code == 200
    wait_for(lambda: gw.proxy(path).status_code == 200, 2, f"{path} to be routed")


def test_database_outage(tmp_path: Path) -> None:
    with private_postgres() as pg, upstream("steady") as up, \
            node(tmp_path, pg.url) as gw:
        route_to(gw, up, "/steady")
        with RequestLoop(f"http://127.0.0.1:{gw.http_port}/steady", pause=0.02) as traffic:
            pg.stop()
            down = gw.call("GET", "/services")
            assert down.status_code == 503, down.text
            assert down.json()["message"].startswith("database unreachable")
            assert gw.call("GET", "/status").json()["database"] == {"reachable": False}
            served_during_outage = traffic.ok
            time.sleep(1.5)  # traffic keeps flowing while the database is away
            assert traffic.ok > served_during_outage
            pg.start()
            wait_for(lambda: gw.call("GET", "/services").status_code == 200, 20,
                     "the Admin API to recover")
            route_to(gw, up, "/after")  # and the reloader catches up with new changes
        assert traffic.failures == [] and traffic.statuses == {200} and traffic.ok > 50
        assert "serving version" in gw.running.output()
        assert "database reachable again" in gw.running.output()


def test_failed_build_keeps_the_last_good_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with upstream("good") as up, node(tmp_path, f"sqlite:///{db}") as gw:
        route_to(gw, up, "/good")
        good = gw.call("GET", "/status").json()["configuration_version"]
        # the write: refused now, so it cannot freeze the configuration any more
        r = gw.call("PUT", "/routes/bad", json={"service": {"name": "good"}, "paths": ["/bad"],
                                                "headers": {"x-v": ["~*("]}})
        assert r.status_code == 400 and "headers" in r.json()["fields"], r.text
        # a row no Admin API would accept (an invalid regex), written behind its back
        bad = str(uuid.uuid4())
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO routes (id, created_at, updated_at, protocols, paths, "
                         "https_redirect_status_code, regex_priority, strip_path, "
                         "path_handling, preserve_host, request_buffering, "
                         "response_buffering) VALUES (?, 1, 1, '[\"http\"]', '[\"~/(\"]', "
                         "426, 0, 1, 'v0', 0, 1, 1)", (bad.replace("-", ""),))
            conn.execute("UPDATE ramparts_meta SET value = value + 1 "
                         "WHERE key = 'config_version'")
        wait_for(lambda: "cannot be built" in gw.running.output(), 2, "the failed build log")
        status = wait_for(lambda: (s := gw.call("GET", "/status").json()).get(
            "configuration_error") and s, 5, "/status to report the failed build")
        assert status["configuration_version"] == good + 1
        assert status["applied_configuration_version"] == good
        assert status["configuration_error"].startswith(
            f"configuration version {good + 1} cannot be built: RegexError: route regex '/('")
        for _ in range(20):
            assert gw.proxy("/good").status_code == 200
        assert gw.call("DELETE", f"/routes/{bad}").status_code == 204
        route_to(gw, up, "/fixed")
        status = gw.call("GET", "/status").json()
        assert "configuration_error" not in status
        assert status["applied_configuration_version"] == status["configuration_version"]
        assert os.path.exists(db)
