"""Worker processes, supervision and signals (admin/supervisor.py), with real processes.

Worker identity comes from Kong's ``GET /`` (``pids.workers``) and from the ``worker`` field of
JSON access-log lines (the pid that served each request, after its TLS handshake).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.gateway import Node, every_worker_applied, node, upstream
from tests.e2e.proc import RAMPARTS, Running, free_port, get_json, ready, wait_for
from tests.e2e.raw import RawUpstream

pytestmark = pytest.mark.e2e


class SlowUpstream(RawUpstream):
    """Answers each request after ``delay`` seconds; ``hits`` counts requests received."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.hits = 0
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.hits += 1
            time.sleep(self.delay)
            body = b"slow and complete"
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n"
                             b"\r\n%s" % (len(body), body))


class EndlessStream(RawUpstream):
    """A server-sent-events stream that never ends: one event every 0.2 s."""

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _stream(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for n in range(3000):  # bounded: 10 minutes at most
                event = b"data: %d\n\n" % n
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                time.sleep(0.2)


@dataclass
class FreshConnections:
    """Requests in a loop, each on a new connection (a new TCP handshake, so a refused or
    reset connection shows), bounded in count and time."""

    url: str
    max_seconds: float = 180.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> FreshConnections:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                # generous: a request queued while a worker restarts waits for it
                r = httpx.get(self.url, timeout=30, verify=False,
                              headers={"connection": "close"})
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            else:
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"status {r.status_code}")
            time.sleep(0.02)


def worker_pids(gw: Node) -> list[int]:
    return list(get_json(gw.running.admin + "/", timeout=10)["pids"]["workers"])


def route(gw: Node, port: int, path: str = "/slow") -> None:
    """A route to ``port``, live on every worker when this returns."""
    name = path.strip("/")
    r = gw.call("PUT", f"/services/{name}", json={"url": f"http://127.0.0.1:{port}",
                                                  "read_timeout": 120_000})
    assert r.status_code == 200, r.text
    r = gw.call("PUT", f"/routes/{name}", json={"paths": [path], "service": {"name": name}})
    assert r.status_code == 200, r.text
    wait_for(partial(every_worker_applied, gw), 60, "the route on every worker")


def health_route(gw: Node) -> None:
    wait_for(lambda: gw.proxy("/__health").status_code == 200, 30, "the proxy")


@contextlib.contextmanager
def two_workers(tmp_path: Path, **settings: Any) -> Iterator[Node]:
    with node(tmp_path, f"sqlite:///{tmp_path}/w.db", workers=2, **settings) as gw:
        wait_for(lambda: len(worker_pids(gw)) == 2, 60, "two workers")
        yield gw


def access_workers(tmp_path: Path) -> list[int]:
    log = tmp_path / "prefix" / "logs" / "access.log"
    return [json.loads(line)["worker"] for line in log.read_text().splitlines() if line]


def test_two_workers_both_serve_tls_handshakes(tmp_path: Path) -> None:
    with two_workers(tmp_path, proxy_access_log_format="json") as gw:
        pids = worker_pids(gw)
        assert len(set(pids)) == 2 and gw.running.proc.pid not in pids

        def both_served() -> bool:
            # each curl is a new process: a new connection, a full TLS handshake
            out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                  f"https://127.0.0.1:{gw.https_port}/__health"],
                                 capture_output=True, text=True, timeout=30)
            assert out.stdout == "200", out
            return set(access_workers(tmp_path)) == set(pids)

        wait_for(both_served, 120, "handshakes served by both workers")
        assert set(access_workers(tmp_path)) <= set(pids)
        # each worker heartbeats as a node of its own; the first one under the node's id
        node_id = gw.call("GET", "/").json()["node_id"]
        rows = wait_for(lambda: (d := gw.call("GET", "/status/cluster").json()["data"])
                        and len(d) == 2 and d, 30, "both workers in /status/cluster")
        assert node_id in {row["id"] for row in rows}
        # /status (Kong's shape) counts the requests both workers served
        served = len(access_workers(tmp_path))
        status = wait_for(lambda: (st := gw.call("GET", "/status").json())
                          and st["server"]["total_requests"] >= served and st, 30,
                          "the workers' counters in /status")
        assert set(status) >= {"database", "server", "configuration_version",
                               "applied_configuration_version"}
        assert status["applied_configuration_version"] == status["configuration_version"]


def test_the_workers_flag_overrides_the_setting(tmp_path: Path) -> None:
    conf = tmp_path / "ramparts.yaml"
    admin = free_port()
    conf.write_text(json.dumps({
        "database": f"sqlite:///{tmp_path}/f.db", "workers": 1, "prefix": str(tmp_path / "p"),
        "admin_listen": f"127.0.0.1:{admin}",
        "proxy_listen": f"127.0.0.1:{free_port()}"}))
    with (tmp_path / "out.log").open("wb") as out:
        proc = subprocess.Popen([RAMPARTS, "start", "-c", str(conf), "--workers", "3"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    running = Running(proc, f"http://127.0.0.1:{admin}", tmp_path / "out.log")
    try:
        ready(running)
        assert len(get_json(running.admin + "/")["pids"]["workers"]) == 3
    finally:
        assert running.stop(timeout=60) == 0


def test_a_killed_worker_loses_only_its_requests_and_comes_back(tmp_path: Path) -> None:
    with two_workers(tmp_path) as gw:
        health_route(gw)
        before = worker_pids(gw)
        with FreshConnections(f"http://127.0.0.1:{gw.http_port}/__health") as loop:
            wait_for(lambda: loop.ok >= 5, 30, "requests before the kill")
            subprocess.run(["kill", "-KILL", str(before[0])], check=True, timeout=10)
            after = wait_for(lambda: (p := worker_pids(gw)) and len(p) == 2
                             and before[0] not in p and p, 120, "the worker's restart")
            served = loop.ok
            wait_for(lambda: loop.ok >= served + 10, 60, "requests after the restart")
        assert before[1] in after  # the other worker was left alone
        assert len(loop.failures) <= 1, loop.failures  # at most the one in flight
        log = gw.running.output()
        assert f"(pid {before[0]}) died" in log and "killed by SIGKILL" in log, log[-2000:]
        # the Admin API process is supervised the same way
        [admin] = children(gw.running.proc.pid) - set(after)
        subprocess.run(["kill", "-KILL", str(admin)], check=True, timeout=10)
        wait_for(lambda: (c := children(gw.running.proc.pid) - set(after)) and admin not in c,
                 60, "a new Admin API process")
        wait_for(lambda: get_json(gw.running.admin + "/status"), 120, "the Admin API again")
        assert f"admin (pid {admin}) died" in gw.running.output()


def children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                         timeout=10)
    return {int(p) for p in out.stdout.split()}


@pytest.mark.parametrize("to", ["supervisor", "group"])
def test_sigterm_drains_a_slow_request_to_completion(tmp_path: Path, to: str) -> None:
    """SIGTERM to the supervisor's pid, or to its whole process group (a terminal's Ctrl-C,
    a service manager): each child then sees the signal and the supervisor's drain too, and
    must still finish the request rather than take the second stop as "at once"."""
    up = SlowUpstream(delay=2.0)
    with two_workers(tmp_path, session=to == "group") as gw:
        route(gw, up.port)
        wait_for(lambda: gw.proxy("/slow").status_code == 200, 30, "the slow route")
        answers: list[httpx.Response | Exception] = []

        def slow_request() -> None:
            try:
                answers.append(gw.proxy("/slow", timeout=60))
            except httpx.HTTPError as exc:
                answers.append(exc)

        hits = up.hits
        client = threading.Thread(target=slow_request)
        client.start()
        wait_for(lambda: up.hits > hits, 30, "the request at the upstream")
        if to == "group":
            os.killpg(gw.running.proc.pid, signal.SIGTERM)
        else:
            gw.running.proc.send_signal(signal.SIGTERM)
        client.join(timeout=60)
        code = gw.running.proc.wait(timeout=60)
        assert code == 0, gw.running.output()[-2000:]
        assert len(answers) == 1 and isinstance(answers[0], httpx.Response), answers
        assert answers[0].status_code == 200 and answers[0].text == "slow and complete"
        assert not port_accepts(gw.http_port)  # stopped accepting


def port_accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_stream_is_cut_at_the_drain_deadline(tmp_path: Path) -> None:
    up = EndlessStream()
    with two_workers(tmp_path, drain_timeout="1s") as gw:
        route(gw, up.port, "/events")
        events: list[bytes] = []
        ended = threading.Event()

        def listen() -> None:
            with contextlib.suppress(httpx.HTTPError), httpx.stream(
                    "GET", f"http://127.0.0.1:{gw.http_port}/events", timeout=60) as r:
                for chunk in r.iter_bytes():
                    events.append(chunk)
            ended.set()

        wait_for(lambda: gw.proxy("/__health").status_code == 200, 30, "the proxy")
        threading.Thread(target=listen, daemon=True).start()
        wait_for(lambda: len(events) >= 3, 30, "the first events")
        sent = time.monotonic()
        gw.running.proc.send_signal(signal.SIGTERM)
        code = gw.running.proc.wait(timeout=60)
        took = time.monotonic() - sent
        assert code == 0, gw.running.output()[-2000:]
        assert ended.wait(10), "the stream was not closed"
        assert took < 30, took  # the 1 s deadline, not forever (slack for a loaded machine)
        assert "cutting 1 connection" in gw.running.output()


def test_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    up = SlowUpstream(delay=60.0)
    with two_workers(tmp_path) as gw:  # drain_timeout 30 s
        route(gw, up.port)

        def doomed() -> None:
            with contextlib.suppress(httpx.HTTPError):
                gw.proxy("/slow", timeout=90)

        threading.Thread(target=doomed, daemon=True).start()
        wait_for(lambda: up.hits >= 1, 30, "the request at the upstream")
        gw.running.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining" in gw.running.output(), 30, "the drain")
        sent = time.monotonic()
        gw.running.proc.send_signal(signal.SIGTERM)
        code = gw.running.proc.wait(timeout=60)
        assert code == 0
        assert time.monotonic() - sent < 20  # not the 30 s drain nor the 60 s upstream
        assert "stopping now" in gw.running.output()


def test_sighup_replaces_every_worker_without_a_refused_connection(tmp_path: Path) -> None:
    with two_workers(tmp_path) as gw:
        health_route(gw)
        assert "x-kong-request-id" in gw.proxy("/__nothing").headers
        before = set(worker_pids(gw))
        admin_before = get_json(gw.running.admin + "/")["pids"]
        conf = tmp_path / "ramparts.yaml"
        settings = json.loads(conf.read_text())
        conf.write_text(json.dumps({**settings, "workers": "many"}))
        gw.running.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "the settings file is invalid, nothing changes" in
                 gw.running.output(), 30, "the refusal of an invalid file")
        assert set(worker_pids(gw)) == before
        moved = settings["proxy_listen"].replace(str(gw.http_port), str(gw.http_port + 1))
        conf.write_text(json.dumps({**settings, "headers": ["off"], "proxy_listen": moved}))
        with FreshConnections(f"https://127.0.0.1:{gw.https_port}/__health") as tls, \
                FreshConnections(f"http://127.0.0.1:{gw.http_port}/__health") as plain:
            wait_for(lambda: tls.ok >= 3 and plain.ok >= 3, 30, "requests before SIGHUP")
            gw.running.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "every process replaced" in gw.running.output(), 180,
                     "the replacement of every process")
            after = set(wait_for(lambda: (p := worker_pids(gw)) and len(p) == 2 and p, 30,
                                 "two workers"))
            served = tls.ok, plain.ok
            wait_for(lambda: tls.ok > served[0] + 3 and plain.ok > served[1] + 3, 30,
                     "requests after SIGHUP")
        assert not before & after, (before, after)
        assert tls.failures == [] and plain.failures == [], (tls.failures, plain.failures)
        assert get_json(gw.running.admin + "/")["pids"]["master"] == admin_before["master"]
        # the re-read settings apply
        assert "x-kong-request-id" not in gw.proxy("/__nothing").headers
        log = gw.running.output()
        assert "proxy_listen changed; it needs a restart" in log, log[-3000:]
        assert gw.running.stop() == 0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_children_of_a_killed_supervisor_drain_and_exit(tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no chance to tell its children: they notice and leave
    instead of serving on unsupervised."""
    with two_workers(tmp_path) as gw:
        pids = children(gw.running.proc.pid)
        assert set(worker_pids(gw)) < pids  # and the Admin API process
        gw.running.proc.kill()
        gw.running.proc.wait(timeout=30)
        wait_for(lambda: not any(alive(p) for p in pids), 60, "the orphaned processes' exit")
        assert "the supervisor (pid" in gw.running.output()


def replacements_beyond(gw: Node, seen: int) -> bool:
    return gw.running.output().count("every process replaced") > seen


def workers_are(gw: Node, count: int) -> bool:
    return len(worker_pids(gw)) == count


def test_sighup_changes_the_number_of_workers(tmp_path: Path) -> None:
    with node(tmp_path, f"sqlite:///{tmp_path}/n.db", workers=1) as gw:
        health_route(gw)
        conf = tmp_path / "ramparts.yaml"
        settings = json.loads(conf.read_text())
        for count in (3, 1):
            conf.write_text(json.dumps({**settings, "workers": count}))
            replaced = gw.running.output().count("every process replaced")
            gw.running.proc.send_signal(signal.SIGHUP)
            wait_for(partial(replacements_beyond, gw, replaced), 180, "the replacement")
            wait_for(partial(workers_are, gw, count), 60, f"{count} worker(s)")
            for _ in range(20):  # new connections: none lands on a removed slot's socket
                r = httpx.get(f"http://127.0.0.1:{gw.http_port}/__health", timeout=30,
                              headers={"connection": "close"})
                assert r.status_code == 200
        assert gw.running.stop() == 0


def test_dbless_configuration_posted_once_reaches_every_worker(tmp_path: Path) -> None:
    """DB-less: the supervisor loads kong.yml into a private file every process opens; a
    POST /config to the Admin API process is read by each worker's own reloader."""
    up = SlowUpstream(delay=0.0)
    first: dict[str, Any] = {"_format_version": "3.0", "services": [
        {"name": "a", "url": f"http://127.0.0.1:{up.port}", "routes": [{"paths": ["/a"]}]}]}
    with node(tmp_path, "off", workers=2, declarative_config_string=json.dumps(first),
              proxy_access_log_format="json") as gw:
        wait_for(lambda: len(worker_pids(gw)) == 2, 60, "two workers")
        assert gw.proxy("/a").status_code == 200
        second = {**first, "services": [{**first["services"][0],
                                         "routes": [{"paths": ["/b"]}]}]}
        r = gw.call("POST", "/config", json=second)
        assert r.status_code == 201, r.text
        wait_for(lambda: gw.proxy("/b").status_code == 200, 30, "the new configuration")

        def both_serve_b() -> bool:
            r = httpx.get(f"http://127.0.0.1:{gw.http_port}/b", timeout=30,
                          headers={"connection": "close"})
            assert r.status_code == 200, r.text  # no worker still serves the old file
            log = (tmp_path / "prefix" / "logs" / "access.log").read_text().splitlines()
            return {json.loads(x)["worker"] for x in log if '"/b"' in x} == \
                set(worker_pids(gw))

        wait_for(both_serve_b, 120, "both workers serving /b")
        assert gw.proxy("/a").status_code == 404
        status = gw.call("GET", "/status").json()
        assert "database" not in status and len(status["configuration_hash"]) == 32


def test_a_write_wakes_every_worker_at_once(tmp_path: Path) -> None:
    """The Admin API process tells the workers about a committed write: with SQLite (no
    NOTIFY) and a one-minute poll, a new route still serves on both workers within seconds.
    """
    with upstream("woken") as port, two_workers(tmp_path, db_update_frequency=60) as gw:
        started = time.monotonic()
        assert gw.call("PUT", "/services/woken",
                       json={"url": f"http://127.0.0.1:{port}"}).status_code == 200
        assert gw.call("PUT", "/routes/woken", json={"paths": ["/woken"],
                                                     "service": {"name": "woken"}}
                       ).status_code == 200
        wait_for(partial(every_worker_applied, gw), 20, "the route on every worker")
        assert time.monotonic() - started < 20  # the poll alone would take up to 60 s
        assert all(gw.proxy("/woken").status_code == 200 for _ in range(10))
