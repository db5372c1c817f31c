"""``ramparts start``: a small supervisor (nginx's master process) and its children.

Once the start's preparation is done (``admin/start.py``: checks, migrations or DB-less
mode's private database), it binds every listening socket and makes the node's TLS session
ticket secret. Then it starts ``workers`` proxy worker processes and one Admin API process,
each a fresh interpreter (``python -m admin.child``) that inherits its sockets (``pass_fds``)
and reads its hand-off from the environment (``gateway/workers/handoff.py``).

Sockets: the Admin API's as configured; for the proxy one SO_REUSEPORT socket per listener
and worker slot. The supervisor keeps them all open, so a restarted or replacing worker
accepts on the very socket its predecessor used: connections queued meanwhile wait, none is
refused or reset.

Signals: SIGTERM/SIGINT drain (every child stops accepting and finishes what is in flight, up
to ``drain_timeout``), then exit 0; a second one, or SIGQUIT, stops at once. SIGHUP re-reads
the settings file and replaces the children one at a time (start the new one, wait until it
serves, then drain the old one); listen addresses and the database cannot change without a
restart: they are logged and kept. A child that dies is started again with back-off.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from gateway.server import BindError, bind
from gateway.settings.listen import Listener
from gateway.settings.load import SettingsError, load
from gateway.settings.model import Settings
from gateway.tls import tickets
from gateway.workers import handoff
from gateway.workers.backoff import Backoff, Exit, after_exit
from gateway.workers.board import ENTRIES, READY, Board
from gateway.workers.startup import StartError, preflight

log = logging.getLogger("ramparts")

TICK = 0.05            # seconds between looks at the children
READY_WITHIN = 120.0   # a new child not serving by then failed to start
QUIT_WITHIN = 5.0      # after SIGQUIT, children still alive are killed
DRAIN_SLACK = 10.0     # beyond drain_timeout, for a child's own clean-up
DRAIN = signal.SIGUSR1  # to a child: drain (gateway/server.py: Lifecycle)
PER_SLOT = 4           # board entries per slot: processes of one slot alive at once
KEPT = ("proxy_listeners", "admin_listeners", "database")  # need a full restart


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    entry: int
    started: float
    ready: bool = False
    retiring: bool = False  # replaced or told to stop: its exit is expected


@dataclass
class Slot:
    """The Admin API (``index`` -1) or one worker slot: its sockets, its process, and the
    replacement being started for it during a SIGHUP."""

    index: int
    sockets: list[tuple[socket.socket, Listener]]
    backoff: Backoff = field(default_factory=Backoff)
    child: Child | None = None
    next: Child | None = None
    restart_at: float | None = None
    served: bool = False  # one of its processes became ready once

    @property
    def name(self) -> str:
        return "admin" if self.index < 0 else f"worker {self.index}"

    def entries(self) -> range:
        """Its status-board entries: the running child's, its replacement's, and those of
        predecessors still draining."""
        base = 0 if self.index < 0 else PER_SLOT * (self.index + 1)
        return range(base, base + PER_SLOT)


def exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class Supervisor:
    def __init__(self, conf: str | None, settings: Settings, dbless_dir: str | None,
                 secret: bytes) -> None:
        self.conf = conf
        self.settings = settings
        self.dbless_dir = dbless_dir
        self.node_id = str(uuid.uuid4())
        self.secret = secret  # the node's ticket secret (admin/start.py), in memory only
        self.board = Board.create()
        self.run_dir = tempfile.mkdtemp(prefix="ramparts-run-")  # 0700
        self.admin = Slot(-1, [])
        self.proxy_listeners = settings.proxy_listeners  # kept until a restart
        self.slots: list[Slot] = []
        self.signals: list[int] = []
        self.started = False  # every first child served once
        self.stopping = False
        self.deadline = float("inf")
        self.failed = False
        self.rolling: list[Slot] = []
        self.retired: list[tuple[Slot, Child]] = []  # replaced or removed, draining
        self.kept_env: dict[str, str] = {}

    # ------------------------------------------------------------------ sockets
    def bind_all(self) -> None:
        admin = self.settings.admin_listeners
        self.admin.sockets = [(self._bind(x, False), x) for x in admin]
        for _ in range(self.settings.worker_processes):
            self.add_slot()

    def add_slot(self) -> Slot:
        slot = Slot(len(self.slots), [(self._bind(x, True), x)
                                      for x in self.proxy_listeners])
        self.slots.append(slot)
        return slot

    @staticmethod
    def _bind(listener: Listener, reuseport: bool) -> socket.socket:
        try:
            return bind(listener, reuseport=reuseport)
        except BindError as exc:
            raise StartError(exc.strerror) from exc

    # ------------------------------------------------------------------ children
    def free_entry(self, slot: Slot) -> int | None:
        """A board entry no live process of the slot uses (None: a SIGHUP storm left
        ``PER_SLOT`` of them draining; the caller waits)."""
        taken = {c.entry for c in self.children()}
        return next((e for e in slot.entries() if e not in taken), None)

    def spawn(self, slot: Slot, wait_workers: int = 0) -> Child:
        entry = self.free_entry(slot)
        assert entry is not None and entry < ENTRIES  # callers check; at most 64 slots
        self.board.clear(entry)
        fds = [sock.fileno() for sock, _ in slot.sockets]
        env = {handoff.LISTENERS: handoff.encode_listeners(
                   [(s.fileno(), x) for s, x in slot.sockets]),
               handoff.BOARD_FD: str(self.board.fd), handoff.NODE_ID: self.node_id,
               handoff.RUN_DIR: self.run_dir, **self.kept_env}
        if self.dbless_dir is not None:
            env[handoff.DBLESS_DIR] = self.dbless_dir
        secret_fd = None
        if slot.index < 0:
            env[handoff.PROCESS] = f"admin:{entry}:{wait_workers}"
        else:
            env[handoff.PROCESS] = f"worker:{slot.index}:{entry}"
            secret_fd = tickets.secret_pipe(self.secret)
            env[handoff.TICKET_SECRET_FD] = str(secret_fd)
            fds.append(secret_fd)
        command = [sys.executable, "-m", "admin.child", *(["-c", self.conf] if self.conf
                                                          else [])]
        try:
            # the supervisor's process group, as nginx's workers: whoever measures or stops
            # the node by its group (a terminal's Ctrl-C, a service manager, the bench
            # harness's CPU count) sees every process; children ignore SIGHUP (the
            # supervisor's to act on), and the drain the supervisor passes on is SIGUSR1,
            # which never cuts a child a group signal already set draining
            proc = subprocess.Popen(command, pass_fds=[self.board.fd, *fds],
                                    env=handoff.child_environment(os.environ, env))
        finally:
            if secret_fd is not None:
                os.close(secret_fd)  # the child's copy is the only one left
        log.info("%s started (pid %d)", slot.name, proc.pid)
        return Child(proc, entry, time.monotonic())

    def all_slots(self) -> list[Slot]:
        return [*self.slots, self.admin]

    def children(self) -> list[Child]:
        return [c for s in self.all_slots() for c in (s.child, s.next) if c is not None] + \
            [c for _, c in self.retired]

    def _is_ready(self, slot: Slot, child: Child) -> bool:
        if not child.ready:
            entry = self.board.read(child.entry)
            child.ready = entry is not None and entry.pid == child.proc.pid \
                and entry.state == READY
            slot.served = slot.served or child.ready
        return child.ready

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(sig, lambda number, _frame: self.signals.append(number))
        for slot in self.slots:
            slot.child = self.spawn(slot)
        # at once, in parallel with the workers' start (an interpreter start takes seconds on
        # a loaded machine); it answers only once they serve, so /status answering still
        # means the proxy is up
        self.admin.child = self.spawn(self.admin, wait_workers=len(self.slots))
        while True:
            while self.signals:
                self.on_signal(self.signals.pop(0))
            for slot in self.all_slots():
                self.reap(slot)
            self.reap_retired()
            if self.failed and not self.stopping:
                self.stop(at_once=True)
            if self.stopping and not self.children():
                break
            self.progress()
            time.sleep(TICK)
        return 1 if self.failed else 0

    def progress(self) -> None:
        now = time.monotonic()
        for slot in self.all_slots():
            for child in (slot.child, slot.next):
                if child is not None:
                    self._is_ready(slot, child)
        if not self.started and all(s.child is not None and s.child.ready
                                    for s in self.all_slots()):
            self.started = True
            log.info("ramparts started: %d worker(s), pids %s; the Admin API in pid %d",
                     len(self.slots), ", ".join(str(s.child.proc.pid) for s in self.slots
                                                if s.child),
                     self.admin.child.proc.pid if self.admin.child else 0)
        for slot in self.all_slots():
            if slot.restart_at is not None and now >= slot.restart_at and not self.stopping \
                    and self.free_entry(slot) is not None:
                slot.restart_at = None
                slot.child = self.spawn(slot)
        if self.rolling:
            self.roll(now)
        if now >= self.deadline:
            for child in self.children():
                log.warning("pid %d did not stop in time: killing it", child.proc.pid)
                child.proc.kill()
            self.deadline = float("inf")

    def retire(self, slot: Slot, child: Child) -> None:
        """Drain ``child``: it stops accepting, finishes its requests and exits."""
        child.retiring = True
        child.proc.send_signal(DRAIN)
        self.retired.append((slot, child))

    def reap_retired(self) -> None:
        for slot, child in list(self.retired):
            if child.proc.poll() is not None:
                self.retired.remove((slot, child))
                self.board.clear(child.entry)
                log.info("%s (pid %d) stopped: %s", slot.name, child.proc.pid,
                         exit_status(child.proc.returncode))

    def reap(self, slot: Slot) -> None:
        for which in ("child", "next"):
            child: Child | None = getattr(slot, which)
            if child is None or child.proc.poll() is None:
                continue
            setattr(slot, which, None)
            self.board.clear(child.entry)
            code = child.proc.returncode
            ran = time.monotonic() - child.started
            action = after_exit(child.retiring or self.stopping, which == "next",
                                slot.served)
            if action is Exit.EXPECTED:
                log.info("%s (pid %d) stopped: %s", slot.name, child.proc.pid, exit_status(code))
                continue
            log.warning("%s (pid %d) died after %.1f s: %s", slot.name, child.proc.pid, ran,
                        exit_status(code))
            if action is Exit.KEEP_OLD:
                log.error("%s: the replacement could not start with the re-read settings; "
                          "the running process is kept", slot.name)
                self.rolling.clear()
            elif action is Exit.NODE_FAILS:
                self.failed = True
            else:
                delay = slot.backoff.delay(ran)
                log.info("%s restarts in %.1f s", slot.name, delay)
                slot.restart_at = time.monotonic() + delay

    # ------------------------------------------------------------------ signals
    def on_signal(self, number: int) -> None:
        if number == signal.SIGHUP:
            if not self.stopping:
                self.reload()
        elif number == signal.SIGQUIT or self.stopping:
            self.stop(at_once=True)
        else:
            self.stop()

    def stop(self, at_once: bool = False) -> None:
        self.rolling.clear()
        self.stopping = True
        for slot in self.all_slots():
            slot.restart_at = None
        sig = signal.SIGQUIT if at_once else DRAIN
        log.info("%s: %d process(es)", "stopping now" if at_once else
                 f"draining (drain_timeout {self.settings.drain_seconds:g} s)",
                 len(self.children()))
        for child in self.children():
            if at_once or not child.retiring:  # a retired one is already draining
                child.proc.send_signal(sig)
            child.retiring = True
        self.deadline = time.monotonic() + (QUIT_WITHIN if at_once else
                                            self.settings.drain_seconds + DRAIN_SLACK)

    def reload(self) -> None:
        """SIGHUP: new settings for new children; the old ones are replaced one by one."""
        try:
            fresh = load(self.conf)
            preflight(fresh)
        except SettingsError as exc:
            log.error("SIGHUP: the settings file is invalid, nothing changes: %s",
                      "; ".join(exc.problems))
            return
        except StartError as exc:
            log.error("SIGHUP: the new settings cannot be used, nothing changes: %s", exc)
            return
        running = {"proxy_listeners": self.proxy_listeners,
                   "admin_listeners": tuple(x for _, x in self.admin.sockets),
                   "database": self.settings.database}
        for name in KEPT:
            if getattr(fresh, name) != running[name]:
                log.warning("SIGHUP: %s changed; it needs a restart, the running value is "
                            "kept", name.removesuffix("s").replace("_listener", "_listen"))
        if fresh.database != self.settings.database:
            self.kept_env["RAMPARTS_DATABASE"] = self.settings.database
            fresh = dataclasses.replace(fresh, database=self.settings.database)
        wanted = fresh.worker_processes
        self.settings = fresh
        log.info("SIGHUP: replacing %d worker(s) and the Admin API one at a time",
                 min(wanted, len(self.slots)))
        self.rolling = [s for s in self.slots[:wanted] if s.child is not None] + [self.admin]
        for slot in self.slots[wanted:]:
            if slot.child is not None:
                self.retire(slot, slot.child)
            # closed now: a socket nobody accepts on would hold the connections the kernel
            # hashes to it; once the draining worker closes its copy it leaves the group
            for sock, _ in slot.sockets:
                sock.close()
        del self.slots[wanted:]
        while len(self.slots) < wanted:
            slot = self.add_slot()
            slot.child = self.spawn(slot)

    def roll(self, now: float) -> None:
        slot = self.rolling[0]
        if slot.child is None:  # died meanwhile: its restart uses the new settings anyway
            self.rolling.pop(0)
            return
        if slot.next is None:
            if self.free_entry(slot) is not None:  # else: wait for a predecessor's drain
                slot.next = self.spawn(slot)
            return
        if slot.next.ready:
            old, slot.child, slot.next = slot.child, slot.next, None
            self.retire(slot, old)  # drains: the new one accepts on the same sockets
            self.rolling.pop(0)
            if not self.rolling:
                log.info("SIGHUP: every process replaced")
        elif now - slot.next.started > READY_WITHIN:
            log.error("%s: the replacement did not start within %g s; keeping the running "
                      "process", slot.name, READY_WITHIN)
            slot.next.retiring = True
            slot.next.proc.kill()
            self.rolling.clear()

    def close(self) -> None:
        for slot in self.all_slots():
            for sock, _ in slot.sockets:
                sock.close()
        self.board.close()
        os.close(self.board.fd)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.dbless_dir is not None:
            shutil.rmtree(self.dbless_dir, ignore_errors=True)


