"""TLS session tickets resume across processes that got the same secret through an inherited
pipe (``RAMPARTS_TICKET_SECRET_FD``, the worker supervisor's contract), not across processes
with different secrets; a ticket of the previous rotation epoch still resumes, one two epochs
old does not; ``ssl_session_tickets: off`` issues none. Real ``openssl s_client`` sessions
(``-sess_out``/``-sess_in``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from gateway.tls.tickets import SECRET_FD_ENV, new_secret, secret_pipe
from tests.e2e.gateway import Node, mtls_auth_on_sni, served_subject, upstream
from tests.e2e.proc import free_port, launch, ramparts, wait_for
from tests.pki import Pki, self_signed

pytestmark = pytest.mark.e2e

GET = b"GET /__health HTTP/1.0\r\n\r\n"


def s_client(port: int, *args: str, servername: str = "a.test") -> str:
    """One connection; an HTTP/1.0 request keeps s_client reading until the server closes,
    so the tickets sent after the handshake are in the session it saves."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                          "-servername", servername, "-ign_eof", *args],
                         input=GET, capture_output=True, timeout=15)
    text = out.stdout.decode(errors="replace")
    assert "HTTP/1.1 " in text, text[-2000:]
    return text


def ticket(port: int, path: Path, *args: str, servername: str = "a.test") -> Path:
    out = s_client(port, "-sess_out", str(path), *args, servername=servername)
    assert out.count("NewSessionTicket") or "TLS session ticket:" in out, out[-2000:]
    assert path.stat().st_size > 0
    return path


def resumes(port: int, sess: Path, *args: str, servername: str = "a.test") -> bool:
    out = s_client(port, "-sess_in", str(sess), *args, servername=servername)
    return "\nReused, " in out


@contextlib.contextmanager
def with_secret(work: Path, secret: bytes, env: dict[str, str] | None = None,
                **settings: Any) -> Iterator[Node]:
    """A node started as a worker is: the secret written into a pipe whose read end it
    inherits, named by ``RAMPARTS_TICKET_SECRET_FD``."""
    read = secret_pipe(secret)
    try:
        http_port, https_port = free_port(), free_port()
        base = {"database": f"sqlite:///{work}/r.db", "prefix": str(work / "prefix"),
                "proxy_listen": f"127.0.0.1:{http_port}, 127.0.0.1:{https_port} ssl"}
        with ramparts(work, {**base, **settings}, env={SECRET_FD_ENV: str(read), **(env or {})},
                      pass_fds=(read,)) as running:
            os.close(read)
            read = -1
            yield Node(running, http_port, https_port)
    finally:
        if read >= 0:
            os.close(read)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Node, Node]]:
    """Two nodes sharing a secret, and a third with its own."""
    secret = new_secret()
    base = tmp_path_factory.mktemp("tickets")
    dirs = [base / name for name in ("a", "b", "c")]
    for d in dirs:
        d.mkdir()
    tls = {"tls": {"min_version": "TLS12"}}  # TLS 1.2 tickets too
    with with_secret(dirs[0], secret, **tls) as a, with_secret(dirs[1], secret, **tls) as b, \
            with_secret(dirs[2], new_secret(), **tls) as c:
        yield a, b, c


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_a_ticket_resumes_on_another_process_with_the_same_secret(
        pair: tuple[Node, Node, Node], tmp_path: Path, version: str) -> None:
    a, b, c = pair
    sess = ticket(a.https_port, tmp_path / "a.sess", version)
    assert resumes(a.https_port, sess, version)
    assert resumes(b.https_port, sess, version)
    assert not resumes(c.https_port, sess, version)


def test_the_sni_certificate_context_still_uses_the_shared_keys(
        pair: tuple[Node, Node, Node], tmp_path: Path) -> None:
    """The SNI callback switches the connection to the certificate's own context; OpenSSL
    keeps taking ticket keys from the listener context, where they are installed."""
    a, b, _ = pair
    cert, key = self_signed(tmp_path, "sni", "sni.test")
    for gw in (a, b):
        r = gw.call("POST", "/certificates", json={"cert": cert, "key": key,
                                                   "snis": ["sni.test"]})
        assert r.status_code == 201, r.text
        wait_for(partial(serves, gw.https_port, "sni.test"), 10, "the SNI certificate")
    sess = ticket(a.https_port, tmp_path / "sni.sess", servername="sni.test")
    assert resumes(b.https_port, sess, servername="sni.test")


def serves(port: int, name: str) -> bool:
    return served_subject(port, name) == f"CN={name}"


def test_no_resumption_on_an_mtls_auth_sni(pair: tuple[Node, Node, Node], tmp_path: Path,
                                          pki: Pki) -> None:
    """A ticket from an SNI without mtls-auth, presented where mtls-auth asks for a
    certificate, gets a full handshake (its CertificateRequest): a resumed session would
    skip the client's chain."""
    a, b, _ = pair
    with upstream("echo") as up:
        for gw in (a, b):
            mtls_auth_on_sni(gw, pki.read("s003/ca.crt"), up, "mtls.test", "/")
        for version in ("-tls1_3", "-tls1_2"):
            sess = ticket(a.https_port, tmp_path / f"plain{version}.sess", version)
            assert resumes(b.https_port, sess, version)
            for gw in (a, b):
                out = s_client(gw.https_port, "-sess_in", str(sess), "-msg", version,
                               servername="mtls.test")
                assert "\nReused, " not in out and "CertificateRequest" in out, version


def test_ssl_session_timeout_is_the_tickets_lifetime(tmp_path: Path) -> None:
    with with_secret(tmp_path, new_secret(), ssl_session_timeout="3h") as gw:
        out = s_client(gw.https_port)
        assert "TLS session ticket lifetime hint: 10800 (seconds)" in out


def test_rotation_accepts_the_previous_epoch_only(tmp_path: Path) -> None:
    period = 4.0
    with with_secret(tmp_path, new_secret(), ssl_session_ticket_rotation=f"{period}s") as gw:
        for _attempt in range(3):  # a loaded machine may miss an epoch: start over
            epoch = _epoch_start(period)
            sess = ticket(gw.https_port, tmp_path / "rot.sess")
            if int(time.time() // period) != epoch:
                continue
            _wait_epoch(period, epoch + 1)
            previous = resumes(gw.https_port, sess)
            if int(time.time() // period) != epoch + 1:
                continue
            assert previous, "a ticket of the previous epoch must resume"
            _wait_epoch(period, epoch + 2)
            assert not resumes(gw.https_port, sess), "a ticket two epochs old must not resume"
            return
        pytest.fail("the machine never kept up with a 4 s epoch")


def _epoch_start(period: float) -> int:
    """Wait for the start of an epoch (so the rest of it is ahead) and return its number."""
    now = time.time()
    epoch = int(now // period) + 1
    time.sleep(epoch * period - now + 0.05)
    return epoch


def _wait_epoch(period: float, epoch: int) -> None:
    time.sleep(max(0.0, epoch * period - time.time() + 0.05))


def test_tickets_off_issues_none(tmp_path: Path) -> None:
    """On the default certificate and on an SNI's own (whose context the SNI callback
    switches to), in TLS 1.3 and 1.2."""
    with with_secret(tmp_path, new_secret(), ssl_session_tickets="off",
                     tls={"min_version": "TLS12"}) as gw:
        cert, key = self_signed(tmp_path, "sni", "sni.test")
        r = gw.call("POST", "/certificates", json={"cert": cert, "key": key,
                                                   "snis": ["sni.test"]})
        assert r.status_code == 201, r.text
        wait_for(partial(serves, gw.https_port, "sni.test"), 10, "the SNI certificate")
        for name in ("a.test", "sni.test"):
            for version in ("-tls1_3", "-tls1_2"):
                out = s_client(gw.https_port, "-msg", version, servername=name)
                assert "NewSessionTicket" not in out, (name, version)


def test_without_the_bridge_tickets_resume_on_their_own_process_only(tmp_path: Path) -> None:
    secret = new_secret()
    off = {"RAMPARTS_LIBSSL_BRIDGE": "off"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with with_secret(tmp_path / "a", secret, env=off) as a, \
            with_secret(tmp_path / "b", secret, env=off) as b:
        sess = ticket(a.https_port, tmp_path / "own.sess")
        assert resumes(a.https_port, sess)
        assert not resumes(b.https_port, sess)
        log = a.running.output()
        assert log.count("session tickets use per-process keys that never rotate") == 1, log


def test_a_short_inherited_secret_stops_the_start(tmp_path: Path) -> None:
    """A worker never runs with keys of its own while its siblings share theirs."""
    read, write = os.pipe()
    os.write(write, b"12345")
    os.close(write)
    try:
        https = free_port()
        proc = launch(tmp_path, {"database": f"sqlite:///{tmp_path}/r.db",
                                 "proxy_listen": f"127.0.0.1:{https} ssl"},
                      env={SECRET_FD_ENV: str(read)}, pass_fds=(read,))
    finally:
        os.close(read)
    try:
        assert proc.proc.wait(timeout=60) == 1
    finally:
        proc.stop()
    assert "has 5 bytes, expected 32" in proc.output()


@pytest.mark.parametrize("setting", [{"ssl_session_timeout": "5m"},
                                     {"ssl_session_ticket_rotation": "10m"}])
def test_without_the_bridge_explicit_session_settings_refuse_to_start(
        tmp_path: Path, setting: dict[str, str]) -> None:
    proc = launch(tmp_path, {"database": f"sqlite:///{tmp_path}/r.db",
                             "proxy_listen": f"127.0.0.1:{free_port()} ssl", **setting},
                  env={"RAMPARTS_LIBSSL_BRIDGE": "off"})
    try:
        assert proc.proc.wait(timeout=60) == 1
    finally:
        proc.stop()
    assert f"cannot honour {next(iter(setting))} without the libssl bridge" in proc.output()
