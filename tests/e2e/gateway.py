"""Helpers for proxy-plane tests: upstream processes, a node with proxy listeners, TLS probes.

Everything binds 127.0.0.1 on free ports and is stopped by PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.proc import Running, free_port, ramparts, wait_for


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        return s.connect_ex((host, port)) == 0


@contextlib.contextmanager
def upstream(name: str = "upstream", port: int | None = None, host: str = "127.0.0.1"
             ) -> Iterator[int]:
    """``tests/e2e/upstream.py`` in its own process; yields its port."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.e2e.upstream", str(port), name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "UPSTREAM_HOST": host})
    try:
        wait_for(lambda: proc.poll() is None and port_open(port, host), 30, f"upstream {name}")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SETTLE = 5.0


def settle(client: httpx.Client) -> None:
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        try:
            status = client.get("/status").json()
        except (httpx.HTTPError, ValueError):
            return
        stored = status.get("configuration_version")
        if stored is None or status.get("configuration_error") or \
                status.get("applied_configuration_version") == stored:
            return
        time.sleep(0.02)


@dataclass
class Node:
    running: Running
    http_port: int
    https_port: int

    @property
    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.running.admin, timeout=10)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An Admin API call; a write that succeeded returns once the node's workers serve
        it (they poll the database in their own processes, as Kong's workers do), so the
        next proxied request sees it. Bounded: a version that cannot be built, or a node
        without versions (DB-less), stops the wait after at most ``SETTLE`` seconds."""
        with self.admin as client:
            response = client.request(method, path, **kwargs)
            if method.upper() in WRITES and response.status_code < 300:
                settle(client)
            return response

    def proxy(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.http_port}{path}",
                         **{"timeout": 10, **kwargs})


@contextlib.contextmanager
def node(workdir: Path, database: str, env: dict[str, str] | None = None,
         session: bool = False, **settings: Any) -> Iterator[Node]:
    http_port, https_port = free_port(), free_port()
    base = {"database": database,
            "proxy_listen": f"127.0.0.1:{http_port}, 127.0.0.1:{https_port} ssl",
            "prefix": str(workdir / "prefix"), "log_level": "info"}
    with ramparts(workdir, {**base, **settings}, env=env, session=session) as running:
        yield Node(running, http_port, https_port)


def _cn(subject: str) -> str:
    match = re.search(r"CN ?= ?([^,;/]+)", subject)
    return f"CN={match.group(1).strip()}" if match else subject[-300:]


def served_subject(port: int, servername: str | None, *args: str) -> str:
    """``CN=...`` of the certificate ``openssl s_client`` is served."""
    sni = ["-servername", servername] if servername else ["-noservername"]
    hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *sni,
                            *args], input=b"", capture_output=True, timeout=15)
    cert = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                          input=hello.stdout, capture_output=True, timeout=15)
    return _cn(cert.stdout.decode())


def served_key_bits(port: int, servername: str, *args: str) -> str:
    hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                            "-servername", servername, *args], input=b"",
                           capture_output=True, timeout=15)
    match = re.search(rb"Server public key is (\d+) bit", hello.stdout)
    return match.group(1).decode() if match else hello.stdout.decode()[-300:]


def curl_subject(name: str, port: int) -> str:
    """What curl sees, resolving ``name`` to 127.0.0.1 (so the SNI is ``name``)."""
    out = subprocess.run(["curl", "-skv", "--resolve", f"{name}:{port}:127.0.0.1",
                          f"https://{name}:{port}/__health"], capture_output=True, text=True,
                         timeout=15)
    match = re.search(r"subject: (.*)", out.stderr)
    return _cn(match.group(1)) if match else out.stderr[-300:]


def json_of(response: httpx.Response) -> Any:
    return json.loads(response.text)


@contextlib.contextmanager
def tls_upstream(chain: str, key: str, client_ca: str | None = None,
                 max_tls12: bool = False, group: str | None = None,
                 ciphers: str | None = None) -> Iterator[int]:
    """``tests/e2e/tls_upstream.py`` in its own process; yields its port. ``group`` limits
    the key exchange to one named group, ``ciphers`` the TLS 1.2 suites (OpenSSL names)."""
    port = free_port()
    args = [sys.executable, "-m", "tests.e2e.tls_upstream", str(port), chain, key]
    env = {**os.environ, **({"TLS_UPSTREAM_MAX": "1.2"} if max_tls12 else {}),
           **({"TLS_UPSTREAM_GROUP": group} if group else {}),
           **({"TLS_UPSTREAM_CIPHERS": ciphers} if ciphers else {})}
    proc = subprocess.Popen([*args, *([client_ca] if client_ca else [])], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: proc.poll() is None and port_open(port), 30, "the TLS upstream")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def every_worker_applied(gw: Node) -> bool:
    """/status: the lowest version any worker serves is the stored one."""
    status = gw.call("GET", "/status").json()
    return bool(status.get("applied_configuration_version") == status["configuration_version"])


def asks_for_a_certificate(port: int, servername: str) -> bool:
    """A handshake on ``servername`` carries a CertificateRequest (``openssl s_client -msg``)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-msg",
                          "-servername", servername], input=b"", capture_output=True,
                         timeout=15)
    return "CertificateRequest" in out.stdout.decode(errors="replace")


def mtls_auth_on_sni(gw: Node, ca_pem: str, upstream_port: int, sni: str, path: str) -> None:
    """Seed 003's set-up on a route restricted to ``sni``: a CA, a service, an https route
    with ``snis``, mtls-auth trusting the CA; returns once handshakes on ``sni`` ask."""
    ca = gw.call("POST", "/ca_certificates", json={"cert": ca_pem})
    assert ca.status_code == 201, ca.text
    gw.call("POST", "/services", json={"name": "s", "url": f"http://127.0.0.1:{upstream_port}"})
    route = gw.call("POST", "/services/s/routes", json={
        "name": "r", "protocols": ["https"], "snis": [sni], "paths": [path]})
    assert route.status_code == 201, route.text
    plugin = gw.call("POST", "/routes/r/plugins", json={
        "name": "mtls-auth", "config": {"ca_certificates": [ca.json()["id"]]}})
    assert plugin.status_code == 201, plugin.text
    wait_for(lambda: asks_for_a_certificate(gw.https_port, sni), 10, f"mtls-auth on {sni}")
