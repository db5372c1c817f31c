"""A cluster through PostgreSQL outages (a private server the test stops and starts): no
proxied request fails and both nodes converge after; a node started while the database is down
serves from its last-good snapshot cache."""

from __future__ import annotations

import contextlib
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import keyring
from tests.e2e.gateway import Node, node, served_subject, upstream
from tests.e2e.loops import RequestLoop
from tests.e2e.proc import launch, wait_for
from tests.e2e.test_resilience import private_postgres, route_to
from tests.pki import self_signed

pytestmark = pytest.mark.e2e


def applied_everywhere(gw: Node, version: int) -> None:
    r = gw.call("GET", f"/status/cluster?wait_for={version}&timeout=20", timeout=30)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2


def test_two_nodes_through_a_postgres_restart(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with private_postgres() as pg, upstream("steady") as up, \
            node(tmp_path / "a", pg.url) as a, node(tmp_path / "b", pg.url) as b:
        route_to(a, up, "/steady")
        wait_for(lambda: b.proxy("/steady").status_code == 200, 2, "node B to route /steady")
        with RequestLoop(f"http://127.0.0.1:{a.http_port}/steady", pause=0.02) as on_a, \
                RequestLoop(f"http://127.0.0.1:{b.http_port}/steady", pause=0.02) as on_b:
            pg.stop()
            served = on_a.ok, on_b.ok
            time.sleep(1.5)  # traffic keeps flowing on both while the database is away
            assert on_a.ok > served[0] and on_b.ok > served[1]
            pg.start()
            wait_for(lambda: a.call("GET", "/services").status_code == 200, 20,
                     "node A's Admin API to recover")
            route_to(a, up, "/after")
            version = a.call("GET", "/status").json()["configuration_version"]
            applied_everywhere(b, version)  # both nodes caught up by themselves
            assert b.proxy("/after").status_code == 200
        assert on_a.failures == [] and on_b.failures == []
        assert on_a.statuses == {200} and on_b.statuses == {200}
        assert on_a.ok > 50 and on_b.ok > 50


@contextlib.contextmanager
def cached_node(work: Path, url: str, key: str) -> Iterator[Node]:
    with node(work, url, env={"RAMPARTS_KEYRING": key},
              snapshot_cache=str(work / "last-good.snapshot")) as gw:
        yield gw


def test_a_node_started_while_the_database_is_down_serves_its_cache(tmp_path: Path) -> None:
    key = keyring.generate("cache")
    cache = tmp_path / "last-good.snapshot"
    cert, private = self_signed(tmp_path, "cached", "cached", "ec")
    with private_postgres() as pg, upstream("cached") as up:
        with cached_node(tmp_path, pg.url, key) as gw:
            route_to(gw, up, "/cached")
            r = gw.call("POST", "/certificates", json={"cert": cert, "key": private,
                                                       "snis": ["cached.test"]})
            assert r.status_code == 201, r.text
            version = gw.call("GET", "/status").json()["configuration_version"]
            wait_for(lambda: cache.exists() and
                     gw.call("GET", "/status").json()["applied_configuration_version"]
                     == version, 5, "the cache to be written")
        assert stat.S_IMODE(cache.stat().st_mode) == 0o600
        body = private.split("-----")[2].strip().splitlines()[0]
        assert body not in cache.read_text() and "PRIVATE KEY" not in cache.read_text()
        pg.stop()
        with cached_node(tmp_path, pg.url, key) as gw:
            assert gw.proxy("/cached").status_code == 200
            assert served_subject(gw.https_port, "cached.test") == "CN=cached"
            status = gw.call("GET", "/status").json()
            assert status["database"] == {"reachable": False}
            assert status["applied_configuration_version"] == version
            assert "from the snapshot cache" in gw.running.output()
            pg.start()  # it catches up by itself once the database answers
            wait_for(lambda: gw.call("GET", "/services").status_code == 200, 20,
                     "the Admin API to recover")
            route_to(gw, up, "/later")
        # a cache sealed under another key is refused: with the database down, no start
        pg.stop()
        other = launch(tmp_path, {"database": pg.url, "snapshot_cache": str(cache)},
                       env={"RAMPARTS_KEYRING": keyring.generate("cache")})
        assert other.proc.wait(timeout=60) == 1
        assert "snapshot cache is unusable" in other.output()


def test_a_snapshot_cache_needs_a_keyring(tmp_path: Path) -> None:
    proc = launch(tmp_path, {"database": f"sqlite:///{tmp_path}/r.db",
                             "snapshot_cache": str(tmp_path / "snap")})
    assert proc.proc.wait(timeout=60) == 1
    assert "snapshot_cache: private keys in it must be encrypted" in proc.output()
