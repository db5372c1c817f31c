"""Private keys on a real node: never in its log (log_level debug), files private, encrypted
at rest, rotated while the node keeps serving TLS with them, and a node without a key."""

from __future__ import annotations

import base64
import os
import re
import sqlite3
import stat
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from tests.e2e.gateway import Node, node, served_subject
from tests.e2e.proc import RAMPARTS, launch, wait_for
from tests.pki import self_signed

pytestmark = pytest.mark.e2e


def key_lines(pem: str) -> list[str]:
    """The base64 body lines of a PEM: any one of them in a log is a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def entry(kid: str) -> str:
    return f"{kid}:{base64.b64encode(kid.encode().ljust(32, b'#')).decode()}"


def write_keyring(path: Path, *kids: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(entry(k) + "\n" for k in kids))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # atomic: the node never reads half a file


def stored_keys(db: Path) -> dict[str, str]:
    """A raw SELECT, bypassing Ramparts entirely."""
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, key FROM certificates").fetchall())


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    d = tmp_path_factory.mktemp("keyring-certs")
    return {name: self_signed(d, name, name, alg) for name, alg in
            [("one", "rsa"), ("two", "ec"), ("three", "rsa"), ("four", "rsa")]}


def post(gw: Node, pair: tuple[str, str], sni: str) -> str:
    r = gw.call("POST", "/certificates", json={"cert": pair[0], "key": pair[1], "snis": [sni]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_keys_never_reach_the_debug_log_and_files_are_private(
        tmp_path: Path, pairs: dict[str, tuple[str, str]]) -> None:
    """SQLite: aiosqlite is the driver that logs every call with its arguments (asyncpg
    logs none; both are covered by tests/db/test_engine.py)."""
    previous = os.umask(0o022)  # what a user's shell has: the node must not rely on it
    try:
        _debug_log_run(tmp_path, pairs)
    finally:
        os.umask(previous)


def _debug_log_run(tmp_path: Path, pairs: dict[str, tuple[str, str]]) -> None:
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db", log_level="debug") as gw:
        assert gw.call("GET", "/").json()["configuration"]["log_level"] == "debug"
        cid = post(gw, pairs["one"], "one.test")
        # multipart, as `curl -F key=@one.key` sends it
        r = gw.call("POST", "/certificates", files={"cert": ("c.crt", pairs["three"][0]),
                                                    "key": ("k.key", pairs["three"][1])})
        assert r.status_code == 201, r.text
        r = gw.call("PATCH", f"/certificates/{cid}", json={"cert": pairs["four"][0],
                                                            "key": pairs["four"][1]})
        assert r.status_code == 200, r.text
        # bad keys: a truncated real key and a key that does not match; neither echoed back
        truncated = "\n".join(pairs["two"][1].splitlines()[:3]) + \
            "\n-----END PRIVATE KEY-----\n"
        for bad in (truncated, pairs["three"][1]):
            r = gw.call("POST", "/certificates", json={"cert": pairs["two"][0], "key": bad})
            assert r.status_code == 400, r.text
            assert "PRIVATE KEY" not in r.text
            assert not any(line in r.text for line in key_lines(bad))
        wait_for(lambda: served_subject(gw.https_port, "one.test") == "CN=four", 5,
                 "the patched certificate to go live")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob("r.db*")}
        assert set(modes) == {"r.db", "r.db-wal", "r.db-shm"}, modes
        assert set(modes.values()) == {0o600}, modes
        ssl_dir = tmp_path / "prefix" / "ssl"
        assert stat.S_IMODE(ssl_dir.stat().st_mode) == 0o700
        for key_file in ssl_dir.glob("*.key"):
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file
    log = gw.running.output()
    assert "PRIVATE KEY" not in log
    for name, (_, key) in pairs.items():
        leaked = [line for line in key_lines(key) if line in log]
        assert not leaked, f"{name}'s key is in the log: {leaked[:1]}"


def test_rotation_while_the_node_serves_tls(tmp_path: Path,
                                            pairs: dict[str, tuple[str, str]]) -> None:
    db = tmp_path / "r.db"
    keys = tmp_path / "keyring"
    write_keyring(keys, "k1")
    names = {"one": "one.test", "two": "two.test", "three": "three.test"}
    with node(tmp_path, f"sqlite:///{db}", keyring_file=str(keys)) as gw:
        for name, sni in names.items():
            post(gw, pairs[name], sni)
        stored = stored_keys(db)
        assert len(stored) == 3
        assert all(v.startswith("$ramparts$v1$k1$") for v in stored.values()), stored
        expected = {sni: f"CN={name}" for name, sni in names.items()}
        wait_for(lambda: all(served_subject(gw.https_port, s) == cn
                             for s, cn in expected.items()), 5, "the certificates")
        # 1. the new key goes into every node's keyring first (picked up without a restart)
        write_keyring(keys, "k2", "k1")
        wait_for(lambda: "current key 'k2'" in gw.running.output(), 10,
                 "the node to read the new keyring")
        # 2. rotate, in one-row batches, while handshakes keep going
        seen: list[tuple[str, str]] = []
        done = threading.Event()

        def handshakes() -> None:
            while not done.is_set() and len(seen) < 500:
                for sni, cn in expected.items():
                    seen.append((cn, served_subject(gw.https_port, sni)))

        worker = threading.Thread(target=handshakes)
        worker.start()
        try:
            wait_for(lambda: len(seen) >= 3, 30, "handshakes before the rotation")
            out = subprocess.run([RAMPARTS, "keyring", "rotate", "-c",
                                  str(tmp_path / "ramparts.yaml"), "--batch", "1"],
                                 cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                 env={k: v for k, v in os.environ.items()
                                      if not k.startswith("RAMPARTS_")})
            assert out.returncode == 0, out.stderr
            assert "re-encrypted 3 values in 3 rows under key 'k2'" in out.stdout
            during = len(seen)
            wait_for(lambda: len(seen) >= during + 3, 30, "handshakes after the rotation")
        finally:
            done.set()
            worker.join(timeout=60)
        wrong = [(want, got) for want, got in seen if want != got]
        assert not wrong, f"{len(wrong)} of {len(seen)} handshakes: {wrong[:3]}"
        stored = stored_keys(db)
        assert all(v.startswith("$ramparts$v1$k2$") for v in stored.values()), stored
        # 3. after the rotation: still served, the Admin API still returns the PEM
        for sni, cn in expected.items():
            assert served_subject(gw.https_port, sni) == cn
        cid = str(uuid.UUID(next(iter(stored))))  # SQLite stores 32 hex digits
        assert gw.call("GET", f"/certificates/{cid}").json()["key"].startswith("-----BEGIN")
    assert "PRIVATE KEY" not in gw.running.output()


def test_a_node_without_one_key_serves_the_others_and_names_it(
        tmp_path: Path, pairs: dict[str, tuple[str, str]]) -> None:
    db = tmp_path / "r.db"
    keys = tmp_path / "keyring"
    write_keyring(keys, "k1")
    with node(tmp_path, f"sqlite:///{db}", keyring_file=str(keys)) as gw:
        lost = post(gw, pairs["one"], "lost.test")
    write_keyring(keys, "k2")  # k1 is gone: its certificate cannot be decrypted
    with node(tmp_path, f"sqlite:///{db}", keyring_file=str(keys)) as gw:
        post(gw, pairs["two"], "kept.test")
        wait_for(lambda: served_subject(gw.https_port, "kept.test") == "CN=two", 5,
                 "the other certificate")
        assert served_subject(gw.https_port, "lost.test") == "CN=localhost"  # the default
        line = next(x for x in gw.running.output().splitlines() if lost in x)
        assert "[ERROR]" in line and "key id 'k1' is not in this node's keyring" in line
        # the key comes back: the node picks it up and serves the certificate again
        write_keyring(keys, "k2", "k1")
        wait_for(lambda: served_subject(gw.https_port, "lost.test") == "CN=one", 10,
                 "the certificate to be served once its key is back")


@pytest.mark.parametrize(("settings", "env", "message"), [
    ({"keyring_file": "missing.keys"}, {},
     "keyring_file: cannot read file 'missing.keys': No such file or directory"),
    ({}, {"RAMPARTS_KEYRING": "k1:c2hvcnQ="}, "RAMPARTS_KEYRING: key 'k1': must be 32 bytes"),
])
def test_a_keyring_that_cannot_be_read_stops_the_start(
        tmp_path: Path, settings: dict[str, str], env: dict[str, str], message: str) -> None:
    running = launch(tmp_path, {"database": f"sqlite:///{tmp_path}/r.db", **settings}, env)
    assert running.proc.wait(timeout=60) == 1
    assert message in running.output()
    assert "c2hvcnQ=" not in running.output()
    assert not re.search(r"Admin API on", running.output())  # never served in plaintext
