"""`make run` on a fresh copy of the repository: the README's first command works as written.

The copy has no ``.venv``, so this also proves that `make run` does all of its own set-up.
The Admin API must answer on the default 127.0.0.1:8001 with the default SQLite database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.proc import curl, free_port, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def fresh_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_make_run_on_a_fresh_clone(tmp_path: Path) -> None:
    if not port_free(8001):
        pytest.fail("127.0.0.1:8001 is taken by another process; `make run` needs it")
    repo = fresh_copy(tmp_path / "ramparts")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAMPARTS_", "MAKE", "VIRTUAL_ENV"))}
    # the proxy's defaults listen on every interface: tests stay on loopback
    env["RAMPARTS_PROXY_LISTEN"] = f"127.0.0.1:{free_port()}, 127.0.0.1:{free_port()} ssl"
    log = (tmp_path / "make-run.log").open("wb")
    proc = subprocess.Popen(["make", "run"], cwd=repo, stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    try:
        def answered() -> tuple[int, str] | None:
            assert proc.poll() is None, (tmp_path / "make-run.log").read_text()
            code, body = curl("localhost:8001/status")
            return (code, body) if code == 200 else None

        _, body = wait_for(answered, 300,
                           "`make run` to bring the Admin API up on 127.0.0.1:8001")
        assert '"reachable":true' in body
        assert (repo / "ramparts.db").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode in (0, -signal.SIGTERM), (tmp_path / "make-run.log").read_text()
