"""The last-good snapshot cache: sealed under the keyring (no private key in clear), 0600,
replaced atomically, refused when it cannot be trusted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from gateway import keyring
from gateway.snapcache import CacheError, SnapshotCache, at_start
from gateway.snapshot import Loaded

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEsecret\n-----END PRIVATE KEY-----\n"
LOADED = Loaded(version=7, rows={"certificates": [{"id": "certificate-one", "key": KEY}],
                                 "routes": [], "target_health": []})


def ring(kid: str = "k1") -> keyring.Keyring:
    return keyring.parse(keyring.generate(kid), "test")


def cache_at(path: Path, kid: str = "k1") -> SnapshotCache:
    """A cache with a keyring of its own (a fresh random key under ``kid``)."""
    keys = ring(kid)
    return SnapshotCache(str(path), lambda: keys)


def test_round_trip_sealed_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "snap.cache"
    cache = cache_at(path)
    cache.write(LOADED)
    cache.write(LOADED)  # replaces, leaves no temporary file behind
    assert os.listdir(tmp_path) == ["snap.cache"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "PRIVATE KEY" not in text and "MIIEsecret" not in text and "certificate-one" not in text
    loaded = cache.read()
    assert loaded.version == 7 and loaded.rows["certificates"][0]["key"] == KEY


def test_untrusted_caches_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "snap.cache"
    k1 = ring("k1")
    SnapshotCache(str(path), lambda: k1).write(LOADED)
    assert SnapshotCache(str(path), lambda: k1).read().version == 7
    with pytest.raises(CacheError, match="not in this node's keyring"):
        cache_at(path, "k2").read()
    with pytest.raises(CacheError, match="no keyring"):
        SnapshotCache(str(path), lambda: None).read()
    with pytest.raises(CacheError, match="no keyring"):
        SnapshotCache(str(path), lambda: None).write(LOADED)
    with pytest.raises(CacheError, match="cannot read"):
        cache_at(tmp_path / "missing").read()
    with pytest.raises(CacheError, match="authentication failed"):  # same id, other key
        cache_at(path, "k1").read()
    sealed = path.read_text()
    flipped = "B" if sealed[-10] == "A" else "A"
    path.write_text(sealed[:-10] + flipped + sealed[-9:])
    with pytest.raises(CacheError, match=r"authentication failed|malformed"):
        SnapshotCache(str(path), lambda: k1).read()


def test_used_at_start_only_when_the_database_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "snap.cache"
    cache = cache_at(path)
    cache.write(LOADED)
    down = ConnectionRefusedError(111, "Connection refused")
    loaded = at_start(cache, down)
    assert loaded is not None and loaded.version == 7
    assert at_start(None, down) is None
    # a schema or SQL failure is no outage: the node must not start on an old copy
    assert at_start(cache, IntegrityError("x", None, Exception("constraint"))) is None
    assert at_start(cache_at(tmp_path / "none"), down) is None
