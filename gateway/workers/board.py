"""The status board: one fixed-size slot per process of a node, in shared memory, so the Admin
API process can answer ``GET /status`` (connection counters, applied configuration version)
without asking the workers anything.

The supervisor makes the board (an anonymous ``memfd``, never a file on disk) and hands its
descriptor to every child; each child writes only its own entry, every ``PUBLISH_INTERVAL``
seconds and right after each swap — never on the request path. Entries are guarded by a
sequence number (a seqlock): the writer makes it odd, writes, makes it even; a reader retries
a read that saw an odd or changed number, so a torn slot is never reported.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

PUBLISH_INTERVAL = 0.5  # seconds between a child's periodic writes
ENTRIES = 4 * 65  # four per worker slot and the Admin API's (old, new and draining ones)
ERROR_BYTES = 240
# seq, pid, role, state, five counters, applied version, applied at, failed version, written
# at, failed TLS handshakes, then the configuration error's text
_HEAD = struct.Struct("<QqqqqqqqqqdqdqH")
_SLOT = struct.Struct(f"<{_HEAD.size}s{ERROR_BYTES}s")
SIZE = _SLOT.size

ROLE_WORKER, ROLE_ADMIN = 1, 2
STARTING, READY, DRAINING = 1, 2, 3


@dataclass(frozen=True, slots=True)
class Entry:
    """What one process last published. ``applied_version`` is -1 before the first load."""

    pid: int
    role: int
    state: int
    connections_accepted: int = 0
    connections_active: int = 0
    connections_handled: int = 0
    requests_active: int = 0
    total_requests: int = 0
    applied_version: int = -1
    applied_at: float = 0.0
    failed_version: int = -1
    written_at: float = 0.0
    error: str = ""
    tls_handshakes_failed: int = 0


class Board:
    """The mapping of the shared memory; ``fd`` is what children inherit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, ENTRIES * SIZE)

    @classmethod
    def create(cls) -> Board:
        fd = os.memfd_create("ramparts-board", 0)  # close-on-exec: passed by pass_fds only
        os.ftruncate(fd, ENTRIES * SIZE)
        return cls(fd)

    def write(self, index: int, entry: Entry) -> None:
        offset = index * SIZE
        seq = struct.unpack_from("<Q", self._map, offset)[0]
        struct.pack_into("<Q", self._map, offset, seq + 1 | 1)  # odd: being written
        error = entry.error.encode("utf-8", "replace")[:ERROR_BYTES]
        head = _HEAD.pack(0, entry.pid, entry.role, entry.state, entry.connections_accepted,
                          entry.connections_active, entry.connections_handled,
                          entry.requests_active, entry.total_requests, entry.applied_version,
                          entry.applied_at, entry.failed_version, entry.written_at,
                          entry.tls_handshakes_failed, len(error))
        self._map[offset + 8:offset + SIZE] = _SLOT.pack(head, error)[8:]
        struct.pack_into("<Q", self._map, offset, (seq + 1 | 1) + 1)  # even: consistent

    def clear(self, index: int) -> None:
        """The process is gone (the supervisor reaped it): its slot no longer counts."""
        self.write(index, Entry(pid=0, role=0, state=0))

    def read(self, index: int, tries: int = 100) -> Entry | None:
        offset = index * SIZE
        for _ in range(tries):
            before = struct.unpack_from("<Q", self._map, offset)[0]
            raw = self._map[offset:offset + SIZE]
            after = struct.unpack_from("<Q", self._map, offset)[0]
            if before == after and not before & 1:
                return _decode(raw)
            time.sleep(0)  # the writer is mid-write: let it finish
        return None

    def entries(self, indexes: Iterable[int] | None = None) -> dict[int, Entry]:
        """Every slot in use (a pid published)."""
        out = {}
        for index in range(ENTRIES) if indexes is None else indexes:
            entry = self.read(index)
            if entry is not None and entry.pid:
                out[index] = entry
        return out

    def close(self) -> None:
        self._map.close()


def _decode(raw: bytes) -> Entry:
    head, error = _SLOT.unpack(raw)
    (_, pid, role, state, accepted, active, handled, requests_active, total, version,
     applied_at, failed, written_at, handshakes_failed, length) = _HEAD.unpack(head)
    return Entry(pid, role, state, accepted, active, handled, requests_active, total, version,
                 applied_at, failed, written_at, error[:length].decode("utf-8", "replace"),
                 handshakes_failed)
