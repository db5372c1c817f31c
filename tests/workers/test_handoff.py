"""The supervisor's hand-off to a child: sockets, the ticket secret pipe, the environment."""

from __future__ import annotations

import os
import socket

import pytest

from gateway.settings.listen import Listener
from gateway.tls import tickets
from gateway.workers import handoff


def test_a_short_secret_stops_the_child() -> None:
    read, write = os.pipe()
    os.write(write, b"short")
    os.close(write)
    env = {handoff.PROCESS: "worker:0:0", handoff.BOARD_FD: "5", handoff.NODE_ID: "n",
           handoff.RUN_DIR: "/run/x", handoff.LISTENERS: "[]",
           handoff.TICKET_SECRET_FD: str(read)}
    with pytest.raises(handoff.HandoffError, match="has 5 bytes"):
        handoff.from_environment(env)


def test_a_worker_reads_its_context_back() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    listener = Listener(host="127.0.0.1", port=sock.getsockname()[1], ssl=True, backlog=511)
    env = {handoff.PROCESS: "worker:3:9", handoff.BOARD_FD: "5", handoff.NODE_ID:
           "6a2b0c4e-1d55-4d6b-9d0e-6f3a3c1b2a10", handoff.RUN_DIR: "/run/x",
           handoff.LISTENERS: handoff.encode_listeners([(sock.fileno(), listener)]),
           handoff.TICKET_SECRET_FD: str(tickets.secret_pipe(bytes(range(32))))}
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
