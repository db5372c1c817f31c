"""The ``ramparts`` command as an operator runs it: real processes, real signals."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.proc import RAMPARTS, curl, get_json, launch, ramparts, ready, wait_for

pytestmark = pytest.mark.e2e


def test_version() -> None:
    out = subprocess.run([RAMPARTS, "version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("ramparts 0.1.0")


def test_start_serves_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    with ramparts(tmp_path, {"database": f"sqlite:///{tmp_path}/r.db"}) as node:
        status = get_json(node.admin + "/status")
        assert status["database"] == {"reachable": True}
        code, _ = curl("-X", "POST", node.admin + "/consumers", "--data", "username=x")
        assert code == 201
        started = time.monotonic()
        assert node.stop() == 0
        assert time.monotonic() - started < 10
        assert "database migrated: 0001, 0002" in node.output()
    with ramparts(tmp_path, {"database": f"sqlite:///{tmp_path}/r.db"}) as node:
        # restart: nothing to migrate, data kept
        code, body = curl(node.admin + "/consumers/x")
        assert code == 200 and '"username":"x"' in body
        assert "database migrated" not in node.output()


def test_migrations_commands(tmp_path: Path) -> None:
    conf = tmp_path / "r.yaml"
    conf.write_text(f"database: sqlite:///{tmp_path}/m.db\n")
    status = subprocess.run([RAMPARTS, "migrations", "status", "-c", str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 3 and "pending: 0001, 0002" in status.stdout
    up = subprocess.run([RAMPARTS, "migrations", "up", "-c", str(conf)],
                        capture_output=True, text=True, timeout=60)
    assert up.returncode == 0 and "applied: 0001, 0002" in up.stdout
    status = subprocess.run([RAMPARTS, "migrations", "status", "-c", str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "pending: none" in status.stdout


def test_invalid_settings_refuse_to_start(tmp_path: Path) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text("admin_listen: nowhere\n")
    out = subprocess.run([RAMPARTS, "start", "-c", str(conf)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and "admin_listen.1: must be of form" in out.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with ramparts(tmp_path, {"database": f"sqlite:///{tmp_path}/a.db"}) as node:
        port = node.admin.rsplit(":", 1)[1]
        conf = tmp_path / "second.yaml"
        conf.write_text(f"database: sqlite:///{tmp_path}/b.db\nadmin_listen: 127.0.0.1:{port}\n")
        out = subprocess.run([RAMPARTS, "start", "-c", str(conf)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in out.stderr


def test_two_nodes_start_together_on_postgres(tmp_path: Path) -> None:
    """The migration advisory lock: two nodes on one fresh database both come up."""
    name = create_pg_database("ramparts_e2e")
    try:
        settings = {"database": pg_url(name)}
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        nodes = [launch(tmp_path / "a", settings), launch(tmp_path / "b", settings)]
        try:
            for node in nodes:
                ready(node)
            a, b = nodes
            code, _ = curl("-X", "POST", a.admin + "/consumers", "--data", "username=shared")
            assert code == 201
            wait_for(lambda: curl(b.admin + "/consumers/shared")[0] == 200, 5,
                     "the second node to read the first node's write")
            migrated = [n.output().count("database migrated: 0001, 0002") for n in nodes]
            assert sorted(migrated) == [0, 1]
        finally:
            for node in nodes:
                node.stop()
    finally:
        drop_pg_database(name)
