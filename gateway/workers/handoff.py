"""What the supervisor hands a child process at exec, and how the child reads it back.

The contract (environment variables set by the supervisor, read once at start):

``RAMPARTS_PROCESS``
    ``admin:<entry>:<workers>`` or ``worker:<slot>:<entry>`` — the role, the worker slot
    (which inherited socket of each proxy listener it serves), its status-board entry, and
    for the Admin API how many workers must serve before it answers (0: none; the node's
    first start waits for all, so ``GET /status`` answering means the proxy is up).
``RAMPARTS_LISTENERS``
    JSON list of ``{"fd": n, "listener": {...}}``: listening sockets the supervisor bound and
    keeps open (inherited with ``pass_fds``; a restarted child gets the same sockets, so
    connections queued meanwhile are served, never reset), in listener order.
``RAMPARTS_BOARD_FD``
    the status board's memfd (``gateway/workers/board.py``).
``RAMPARTS_NODE_ID``
    the node's id (``GET /``); worker slot 0 heartbeats under it, slot N under a uuid5 of it.
``RAMPARTS_RUN_DIR``
    the node's private (0700) run directory: the workers' control sockets.
``RAMPARTS_DBLESS_DIR``
    DB-less only: the directory of the private SQLite file the supervisor loaded.
``RAMPARTS_TICKET_SECRET_FD``
    workers only: the read end of a pipe holding exactly 32 bytes, the node's TLS session
    ticket secret for this start (made once by the supervisor with ``secrets``, never written
    to disk or to the environment). The child reads it once and closes the pipe
    (``gateway/tls/tickets.py``: ``secret_pipe`` writes it, ``secret_from_fd`` reads it),
    so nothing else can.

None of these names is a settings key (``RAMPARTS_<KEY>``), so settings never see them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.settings.listen import Listener
from gateway.tls import tickets

PROCESS = "RAMPARTS_PROCESS"
LISTENERS = "RAMPARTS_LISTENERS"
BOARD_FD = "RAMPARTS_BOARD_FD"
NODE_ID = "RAMPARTS_NODE_ID"
RUN_DIR = "RAMPARTS_RUN_DIR"
DBLESS_DIR = "RAMPARTS_DBLESS_DIR"
TICKET_SECRET_FD = tickets.SECRET_FD_ENV


class HandoffError(Exception):
    """The environment is not what the supervisor sets (the process was started by hand)."""


@dataclass(frozen=True)
class ChildContext:
    """A child's start-up context, as the supervisor handed it over."""

    role: str  # "admin" or "worker"
    slot: int  # a worker's slot; for the Admin API, the workers to wait for
    entry: int
    node_id: str
    board_fd: int
    run_dir: str
    sockets: tuple[tuple[socket.socket, Listener], ...]
    dbless_dir: str | None = None
    ticket_secret: bytes | None = field(default=None, repr=False)

    @property
    def heartbeat_id(self) -> str:
        """This worker's row in ``ramparts_nodes``: stable across restarts of the slot."""
        if self.slot == 0:
            return self.node_id
        return str(uuid.uuid5(uuid.UUID(self.node_id), f"worker-{self.slot}"))


def encode_listeners(pairs: list[tuple[int, Listener]]) -> str:
    return json.dumps([{"fd": fd, "listener": dataclasses.asdict(x)} for fd, x in pairs])


def control_path(run_dir: str, entry: int) -> str:
    return os.path.join(run_dir, f"worker-{entry}.sock")


def from_environment(env: Mapping[str, str] | None = None) -> ChildContext:
    environ = os.environ if env is None else env
    try:
        role, *where = environ[PROCESS].split(":")
        entry, slot = (int(where[1]), int(where[0])) if role == "worker" else \
            (int(where[0]), int(where[1]))
        pairs = json.loads(environ[LISTENERS])
        sockets = tuple((socket.socket(fileno=int(p["fd"])), Listener(**p["listener"]))
                        for p in pairs)
        secret_fd = environ.get(TICKET_SECRET_FD)
        if env is None:
            # read once: the number must not outlive the pipe (a reused descriptor number
            # would name another file)
            os.environ.pop(TICKET_SECRET_FD, None)
        return ChildContext(
            role=role, slot=slot, entry=entry, node_id=environ[NODE_ID],
            board_fd=int(environ[BOARD_FD]), run_dir=environ[RUN_DIR], sockets=sockets,
            dbless_dir=environ.get(DBLESS_DIR) or None,
            ticket_secret=tickets.secret_from_fd(int(secret_fd)) if secret_fd else None)
    except (KeyError, ValueError, TypeError, IndexError, OSError,
            tickets.TicketSecretError) as exc:
        raise HandoffError(f"not started by the ramparts supervisor: {exc!r}") from exc


def child_environment(base: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without a previous child's hand-off, plus ``values``."""
    ours = {PROCESS, LISTENERS, BOARD_FD, NODE_ID, RUN_DIR, DBLESS_DIR, TICKET_SECRET_FD}
    return {**{k: v for k, v in base.items() if k not in ours}, **values}
