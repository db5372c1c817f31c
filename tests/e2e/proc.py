"""Start and stop real ``ramparts`` processes (by PID), and wait with deadlines, not sleeps."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RAMPARTS = str(Path(sys.executable).with_name("ramparts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            raise  # the check saw something that will not get better by waiting
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def get_json(url: str, timeout: float = 2) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    admin: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError("ramparts did not stop within the deadline after SIGTERM") \
                from exc


def launch(workdir: Path, settings: dict[str, Any], env: dict[str, str] | None = None,
           pass_fds: tuple[int, ...] = (), session: bool = False) -> Running:
    """``ramparts start -c <settings>`` in ``workdir``, without waiting for it; ``pass_fds``
    are inherited (as the worker supervisor hands a worker its pipes); ``session``: in a
    session (and process group) of its own, for a test that signals the whole group."""
    port = free_port()
    # loopback only, on free ports, unless the test says otherwise
    settings = {"admin_listen": f"127.0.0.1:{port}", "prefix": str(workdir / "prefix"),
                "proxy_listen": f"127.0.0.1:{free_port()}, 127.0.0.1:{free_port()} ssl",
                **settings}
    conf = workdir / "ramparts.yaml"
    conf.write_text(json.dumps(settings))
    log = workdir / "ramparts.log"
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPARTS_")}
    with log.open("wb") as out:
        proc = subprocess.Popen([RAMPARTS, "start", "-c", str(conf)], cwd=workdir,
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**clean_env, **(env or {})}, pass_fds=pass_fds,
                                start_new_session=session)
    return Running(proc, f"http://127.0.0.1:{port}", log)


def ready(node: Running, timeout: float = 60) -> None:
    wait_for(lambda: node.proc.poll() is not None or get_json(node.admin + "/status"),
             timeout, "the Admin API")
    if node.proc.poll() is not None:
        raise AssertionError(f"ramparts exited early:\n{node.output()}")


@contextlib.contextmanager
def ramparts(workdir: Path, settings: dict[str, Any], timeout: float = 60,
             env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = (),
             session: bool = False) -> Iterator[Running]:
    """A running node; yields once ``/status`` answers, stops it (SIGTERM) afterwards."""
    node = launch(workdir, settings, env, pass_fds, session)
    try:
        ready(node, timeout)
        yield node
    finally:
        with contextlib.suppress(AssertionError):
            node.stop()


def curl(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=30)
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def shell(line: str, cwd: Path) -> tuple[int, Any]:
    """Run a user's curl line as written (bash, so ``$(cat ...)`` works); returns the
    status and the JSON body."""
    out = subprocess.run(["bash", "-c", line + " -sS -w '\\n%{http_code}'"], cwd=cwd,
                         capture_output=True, text=True, timeout=30)
    body, _, code = out.stdout.rpartition("\n")
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = body
    return int(code or 0), parsed


def raise_for(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
