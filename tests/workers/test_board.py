"""The status board: entries written by one process are read whole by another, and the node's
/status numbers derive from them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gateway.workers.board import READY, ROLE_ADMIN, ROLE_WORKER, Board, Entry
from gateway.workers.view import configuration_status, server_status, worker_pids


@pytest.fixture
def board() -> Iterator[Board]:
    made = Board.create()
    yield made
    made.close()
    os.close(made.fd)


def test_an_entry_reads_back_whole(board: Board) -> None:
    entry = Entry(1234, ROLE_WORKER, READY, 5, 2, 3, 1, 9, 42, 1.5, 43, 2.5,
                  "configuration version 43 cannot be built: é" * 10, tls_handshakes_failed=6)
    board.write(7, entry)
    got = board.read(7)
    assert got is not None and got.pid == 1234 and got.applied_version == 42
    assert got.tls_handshakes_failed == 6
    assert got.error == entry.error.encode()[:240].decode("utf-8", "replace")
    assert board.entries() == {7: got}
    board.clear(7)
    assert board.entries() == {}


def test_another_process_sees_what_was_written(board: Board) -> None:
    """The memfd is inherited by a child, as the supervisor's children inherit it."""
    code = (f"from gateway.workers.board import Board, Entry\n"
            f"b = Board({board.fd})\n"
            f"b.write(3, Entry(4321, 1, 2, total_requests=77, applied_version=5))\n")
    subprocess.run([sys.executable, "-c", code], pass_fds=[board.fd], check=True, timeout=60)
    got = board.read(3)
    assert got is not None and (got.pid, got.total_requests, got.applied_version) == \
        (4321, 77, 5)


def worker(pid: int, version: int, **counts: int | float | str) -> Entry:
    return Entry(pid, ROLE_WORKER, READY, applied_version=version, **counts)  # type: ignore[arg-type]


def test_the_node_serves_the_lowest_version_any_worker_serves() -> None:
    entries = [worker(1, 7, applied_at=10.0), worker(2, 6, applied_at=12.0),
               Entry(3, ROLE_ADMIN, READY)]
    assert configuration_status(entries) == {"applied_configuration_version": 6,
                                             "configuration_applied_at": 12.0}
    assert configuration_status([worker(1, -1)]) == {"applied_configuration_version": None}
    assert configuration_status([Entry(3, ROLE_ADMIN, READY)]) == {}
    failing = [worker(1, 6, applied_at=1.0, error="configuration version 7 cannot be built")]
    assert configuration_status(failing)["configuration_error"] == \
        "configuration version 7 cannot be built"
    assert worker_pids(entries) == [1, 2]


def test_counters_are_the_sum_over_the_processes() -> None:
    entries = [worker(1, 1, connections_accepted=3, connections_active=2, total_requests=10,
                      requests_active=1, tls_handshakes_failed=2),
               worker(3, 1, tls_handshakes_failed=1),
               Entry(2, ROLE_ADMIN, READY, connections_accepted=1, connections_active=1,
                     total_requests=4)]
    status = server_status(entries)
    assert status["connections_accepted"] == 4 and status["connections_active"] == 3
    assert status["total_requests"] == 14 and status["connections_writing"] == 1
    assert status["tls_handshakes_failed"] == 3  # the workers' TLS listeners refused 3
