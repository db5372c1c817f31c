"""The supervisor's hand-off to a child: sockets, the ticket secret pipe, the environment."""

from __future__ import annotations

import os
import socket

import pytest

from gateway.settings.listen import Listener
from gateway.workers import handoff


def test_the_secret_pipe_holds_exactly_the_secret_and_is_closed_after_reading() -> None:
    fd = handoff.write_secret(b"k" * 32)
    assert handoff.read_secret(fd) == b"k" * 32
    with pytest.raises(OSError):
        os.fstat(fd)


def test_a_short_secret_is_refused() -> None:
    fd = handoff.write_secret(b"short")
    with pytest.raises(handoff.HandoffError, match="held 5 bytes"):
        handoff.read_secret(fd)


def test_a_worker_reads_its_context_back() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    listener = Listener(host="127.0.0.1", port=sock.getsockname()[1], ssl=True, backlog=511)
    env = {handoff.PROCESS: "worker:3:9", handoff.BOARD_FD: "5", handoff.NODE_ID:
           "6a2b0c4e-1d55-4d6b-9d0e-6f3a3c1b2a10", handoff.RUN_DIR: "/run/x",
           handoff.LISTENERS: handoff.encode_listeners([(sock.fileno(), listener)]),
           handoff.TICKET_SECRET_FD: str(handoff.write_secret(bytes(range(32))))}
    ctx = handoff.from_environment(env)
    assert (ctx.role, ctx.slot, ctx.entry, ctx.board_fd) == ("worker", 3, 9, 5)
    assert ctx.ticket_secret == bytes(range(32))
    [(inherited, got)] = ctx.sockets
    assert got == listener and inherited.fileno() == sock.fileno()
    assert ctx.heartbeat_id != ctx.node_id  # slot 0 alone heartbeats as the node
    assert "ticket_secret" not in repr(ctx)  # never in a log line
    inherited.detach()
    sock.close()


def test_a_process_started_by_hand_is_told_so() -> None:
    with pytest.raises(handoff.HandoffError, match="not started by the ramparts supervisor"):
        handoff.from_environment({})


def test_a_child_environment_drops_a_previous_hand_off() -> None:
    env = handoff.child_environment({"PATH": "/bin", handoff.TICKET_SECRET_FD: "9"},
                                    {handoff.PROCESS: "admin:0:1"})
    assert env == {"PATH": "/bin", handoff.PROCESS: "admin:0:1"}
