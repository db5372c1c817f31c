"""Two real nodes on the machine's PostgreSQL: changes reach the other node (with NOTIFY, and
by polling alone), and the rollout is visible in ``/status/cluster``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.reload import LISTEN_APPLICATION
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.gateway import Node, node, served_subject
from tests.e2e.proc import wait_for
from tests.pki import self_signed

pytestmark = pytest.mark.e2e


@dataclass
class Pair:
    a: Node
    b: Node
    database: str

    def listening(self) -> int:
        """Sessions of this database that LISTEN for configuration changes."""
        async def count() -> int:
            conn = await asyncpg.connect(pg_url(self.database), timeout=10)
            try:
                return int(await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND "
                    "application_name = $2", self.database, LISTEN_APPLICATION))
            finally:
                await conn.close()

        return asyncio.run(count())


@contextlib.contextmanager
def pair(tmp_path: Path, **settings: Any) -> Iterator[Pair]:
    name = create_pg_database("ramparts_cluster")
    try:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with node(tmp_path / "a", pg_url(name), **settings) as a, \
                node(tmp_path / "b", pg_url(name), **settings) as b:
            yield Pair(a, b, name)
    finally:
        drop_pg_database(name)


def post_cert(gw: Node, tmp_path: Path, cn: str, sni: str) -> int:
    """Posts a certificate; returns the configuration version the write made."""
    cert, key = self_signed(tmp_path, cn, cn, "ec")
    r = gw.call("POST", "/certificates", json={"cert": cert, "key": key, "snis": [sni]})
    assert r.status_code == 201, r.text
    return int(gw.call("GET", "/status").json()["configuration_version"])


def test_rollout_is_visible_and_wait_for_returns_once_both_applied(tmp_path: Path) -> None:
    with pair(tmp_path) as nodes:
        a, b = nodes.a, nodes.b
        ids = {a.call("GET", "/").json()["node_id"], b.call("GET", "/").json()["node_id"]}
        listed = wait_for(lambda: len(d := b.call("GET", "/status/cluster").json()["data"]) == 2
                          and d, 10, "both nodes in /status/cluster")
        assert {n["id"] for n in listed} == ids
        version = post_cert(a, tmp_path, "rollout", "rollout.test")
        r = b.call("GET", f"/status/cluster?wait_for={version}&timeout=10")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["laggards"] == [] and len(body["data"]) == 2
        assert all(n["applied_configuration_version"] >= version for n in body["data"])
        # once /status/cluster says so, node B serves it: no further waiting
        assert served_subject(b.https_port, "rollout.test") == "CN=rollout"
        local = b.call("GET", "/status").json()
        assert local["applied_configuration_version"] >= version
        assert local["configuration_applied_at"] > 0
        # a version nobody will reach: 504 naming both nodes
        r = a.call("GET", f"/status/cluster?wait_for={version + 1000}&timeout=0.5")
        assert r.status_code == 504 and set(r.json()["laggards"]) == ids
        # a node that stops cleanly leaves the view at once (not after cluster_node_ttl)
        b_id = b.call("GET", "/").json()["node_id"]
        assert b.running.stop() == 0
        assert b_id not in {n["id"] for n in a.call("GET", "/status/cluster").json()["data"]}


def test_a_certificate_posted_on_a_is_served_by_b_within_2s(tmp_path: Path) -> None:
    with pair(tmp_path) as nodes:
        a, b = nodes.a, nodes.b
        wait_for(lambda: nodes.listening() == 2, 10, "both nodes to LISTEN")
        post_cert(a, tmp_path, "fast", "fast.test")
        wait_for(lambda: served_subject(b.https_port, "fast.test") == "CN=fast", 2,
                 "node B to serve the certificate posted on node A")


def test_polling_alone_converges_without_notifications(tmp_path: Path) -> None:
    with pair(tmp_path, db_notifications=False, db_update_frequency=0.5) as nodes:
        a, b = nodes.a, nodes.b
        version = post_cert(a, tmp_path, "polled", "polled.test")
        wait_for(lambda: served_subject(b.https_port, "polled.test") == "CN=polled", 5,
                 "node B to serve the certificate by polling")
        r = a.call("GET", f"/status/cluster?wait_for={version}&timeout=10")
        assert r.status_code == 200, r.text
        assert nodes.listening() == 0  # it was polling alone
