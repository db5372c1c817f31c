"""The last-good snapshot cache (setting ``snapshot_cache``): what the node last loaded, kept on
disk so a node started while the database is down still serves.

The file is the loaded rows (not the built snapshot: the build is cheap and its code may change
between releases) as JSON, sealed as a whole with the keyring's current key (AES-256-GCM, the
same keyring as the database's secrets: ``RAMPARTS_KEYRING`` or ``keyring_file``), so the
private keys in it are never on disk in clear. It is written after each successful load to a
private temporary file (0600) that is fsynced and renamed over the old one: a crash leaves the
old cache or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable

from gateway import keyring
from gateway.db.store import is_unavailable
from gateway.errors import SecretUnavailable
from gateway.keyring import Keyring
from gateway.snapshot import Loaded

log = logging.getLogger("ramparts.cache")

AAD = b"ramparts\0snapshot_cache"
FORMAT = 1


class CacheError(Exception):
    """The cache cannot be used (missing, unreadable, from another keyring, corrupt)."""


class SnapshotCache:
    def __init__(self, path: str, ring: Callable[[], Keyring | None]) -> None:
        """``ring`` returns the keyring in use now (it can change while the node runs)."""
        self.path = path
        self.ring = ring

    def write(self, loaded: Loaded) -> None:
        """Seal and replace the cache atomically (blocking: run it in an executor)."""
        ring = self.ring()
        if ring is None:
            raise CacheError("no keyring: the cache would hold private keys in clear")
        body = json.dumps({"format": FORMAT, "version": loaded.version,
                           "rows": loaded.rows}, separators=(",", ":"))
        sealed = ring.seal(body, AAD)
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".snapshot-", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(sealed)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(directory)

    def read(self) -> Loaded:
        ring = self.ring()
        try:
            with open(self.path, encoding="ascii") as fh:
                sealed = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CacheError(f"cannot read {self.path}: {exc}") from exc
        if ring is None or not keyring.is_sealed(sealed):
            raise CacheError(f"{self.path} is not a sealed snapshot cache or no keyring is "
                             "configured")
        try:
            data = json.loads(ring.open(sealed, AAD, f"the snapshot cache {self.path}"))
        except SecretUnavailable as exc:
            raise CacheError(str(exc)) from exc
        except ValueError as exc:
            raise CacheError(f"{self.path} is corrupt: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CacheError(f"{self.path}: unknown cache format")
        return Loaded(version=int(data["version"]), rows=data["rows"])


def _fsync_dir(directory: str) -> None:
    # the rename itself must survive a power cut, not only the file's bytes
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def at_start(cache: SnapshotCache | None, exc: BaseException) -> Loaded | None:
    """The cached snapshot to start from when the database is unreachable at start-up
    (``exc`` says why it failed); None when the node cannot start (another failure, no
    usable cache: the caller reports ``exc``)."""
    if cache is None or not is_unavailable(exc):
        return None
    try:
        loaded = cache.read()
    except CacheError as err:
        log.error("the database is unreachable and the snapshot cache is unusable: %s", err)
        return None
    log.warning("the database is unreachable (%s); serving configuration version %d from the "
                "snapshot cache %s until it answers (migrations are not checked meanwhile)",
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__, loaded.version,
                cache.path)
    return loaded
