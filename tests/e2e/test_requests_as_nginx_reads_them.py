"""Requests as nginx and Kong read them (issue 10): malformed and smuggling shapes are refused
and never reach the upstream, paths are normalised before routing and forwarding, hosts
compare case-insensitively without a trailing dot, absolute-form targets route by their host,
header bytes pass unchanged, and idle connections do not starve a normal client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gateway import Node, every_worker_applied, node, upstream
from tests.e2e.proc import wait_for
from tests.e2e.raw import RawUpstream

pytestmark = pytest.mark.e2e


class Recorder(RawUpstream):
    """A raw upstream that answers every request 200 and keeps every byte it received."""

    def __init__(self) -> None:
        self.received = b""
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                self.received += data
                if b"\r\n\r\n" in data:
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("nginx-reading")
    with node(work, f"sqlite:///{work}/r.db") as running:
        yield running


@pytest.fixture(scope="module")
def echo(gw: Node) -> Iterator[int]:
    with upstream("echo") as port:
        routes: dict[str, dict[str, Any]] = {
            "public": {"paths": ["~/public/.*"], "strip_path": False},
                  "plain": {"paths": ["/plain"], "strip_path": False},
                  "named": {"hosts": ["named.test"], "paths": ["/named"]}}
        for name, route in routes.items():
            assert gw.call("PUT", f"/services/{name}",
                           json={"url": f"http://127.0.0.1:{port}"}).status_code == 200
            assert gw.call("PUT", f"/routes/{name}",
                           json={**route, "service": {"name": name}}).status_code == 200
        # the last write, not the first route, must be live (the worker polls for it)
        wait_for(lambda: every_worker_applied(gw), 10, "the routes")
        yield port


def serve(gw: Node, name: str, port: int) -> None:
    """A service ``name`` for the upstream on ``port``, and its route ``/name``."""
    assert gw.call("PUT", f"/services/{name}",
                   json={"url": f"http://127.0.0.1:{port}"}).status_code == 200
    assert gw.call("PUT", f"/routes/{name}", json={"paths": [f"/{name}"],
                                                   "service": {"name": name}}
                   ).status_code == 200


def raw(gw: Node, data: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.http_port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def seen(answer: bytes) -> Any:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


SMUGGLING = [
    b"POST /rec HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n0\r\n\r\nGET /rec/smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /rec HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc",
    b"GET /rec HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
    b"GET /rec HTTP/1.1\r\nHost: a\nX-Bare: lf\r\n\r\n",
    b"GET /rec HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /rec HTTP/1.1\r\n\r\n",
    b"TRACE /rec HTTP/1.1\r\nHost: a\r\n\r\n",
]


def test_smuggling_shapes_are_refused_and_never_reach_the_upstream(gw: Node) -> None:
    rec = Recorder()
    try:
        serve(gw, "rec", rec.port)
        wait_for(lambda: gw.proxy("/rec").status_code == 200, 2, "the recorder route")
        rec.received = b""
        for shape in SMUGGLING:
            answer = raw(gw, shape)
            assert status_of(answer) in (400, 405), (shape, answer[:200])
        assert rec.received == b""
    finally:
        rec.sock.close()


@pytest.mark.parametrize(("path", "status", "upstream_path"), [
    ("/public/a/../b", 200, "/public/b"),
    ("/public/%2e%2e/secure/admin", 404, None),  # normalised: /secure/admin, no route
    ("/public/%2E%2E/%2e/x", 404, None),
    ("/public//x//y", 200, "/public/x/y"),
    ("/public/./x/%7euser", 200, "/public/x/~user"),
    ("/plain/../public/z", 200, "/public/z"),
    ("/public/../plain/q", 200, "/plain/q"),
    ("/public/%2Fslash", 200, "/public/%2Fslash"),  # reserved escapes stay
])
def test_paths_are_normalised_before_routing(gw: Node, echo: int, path: str, status: int,
                                             upstream_path: str | None) -> None:
    answer = raw(gw, f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    assert status_of(answer) == status, answer[:300]
    if upstream_path is not None:
        assert seen(answer)["path"] == upstream_path


def test_hosts_case_and_trailing_dot_and_absolute_form(gw: Node, echo: int) -> None:
    for host in (b"named.test", b"NAMED.Test", b"named.test.", b"named.test:80"):
        answer = raw(gw, b"GET /named HTTP/1.1\r\nHost: " + host +
                     b"\r\nConnection: close\r\n\r\n")
        assert status_of(answer) == 200, (host, answer[:200])
    answer = raw(gw, b"GET http://named.test/named HTTP/1.1\r\nHost: other.test\r\n"
                     b"Connection: close\r\n\r\n")
    assert status_of(answer) == 200  # the absolute-form target's host wins
    answer = raw(gw, b"GET /named HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 404


def test_header_bytes_that_are_not_utf8_pass_unchanged(gw: Node, echo: int) -> None:
    answer = raw(gw, b"GET /plain HTTP/1.1\r\nHost: a\r\nX-Bytes: a\x85b\r\n"
                     b"Connection: close\r\n\r\n")
    # aiohttp decodes with surrogateescape: a raw 0x85 byte shows as \udc85 (C2 85 would
    # have been \u0085)
    assert seen(answer)["headers"]["X-Bytes"] == "a\udc85b"


def test_idle_connections_do_not_starve_a_normal_client(gw: Node, echo: int) -> None:
    idle: list[socket.socket] = []
    try:
        for n in range(2000):
            s = socket.create_connection(("127.0.0.1", gw.http_port), timeout=5)
            if n % 2:
                s.sendall(b"GET /plain HTTP/1.1\r\nHo")  # a trickle that never ends
            idle.append(s)
        started = time.monotonic()
        assert gw.proxy("/plain").status_code == 200
        assert time.monotonic() - started < 1
    finally:
        for s in idle:
            s.close()


def test_timeouts_and_the_access_log(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"nginx_http_client_header_timeout": "1s",
                                "nginx_http_client_body_timeout": "1s",
                                "nginx_http_keepalive_timeout": "1s"}
    with upstream("timed") as port, node(tmp_path, f"sqlite:///{tmp_path}/r.db",
                                         **settings) as gw:
        serve(gw, "timed", port)
        r = wait_for(lambda: (r := gw.proxy("/timed/x?q=1")).status_code == 200 and r, 2,
                     "the route")
        for opening in (b"", b"GET /timed HTTP/1.1\r\nHost: a\r\n"):  # silent, half a head
            started = time.monotonic()
            assert raw(gw, opening, timeout=10) == b""  # closed without a word, as nginx
            assert 0.5 < time.monotonic() - started < 5
        started = time.monotonic()  # a body that stops coming: 408
        answer = raw(gw, b"POST /timed/count HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                         b"\r\nabc", timeout=10)
        assert status_of(answer) == 408 and time.monotonic() - started < 5
        access = tmp_path / "prefix" / "logs" / "access.log"
        wait_for(lambda: r.headers["x-kong-request-id"] in access.read_text(), 2,
                 "the access log line")
        line = next(x for x in access.read_text().splitlines()
                    if r.headers["x-kong-request-id"] in x)
        assert line.startswith("127.0.0.1 - - [") and '"GET /timed/x?q=1 HTTP/1.1" 200 ' in line


def test_client_max_body_size_refuses_before_the_upstream(tmp_path: Path) -> None:
    """Kong's ``nginx_http_client_max_body_size``: a Content-Length over it gets Kong's 413
    before the body is asked for (no ``100 Continue``), a chunked body past it likewise when
    it came whole; neither reaches the upstream, and the error log says why, as nginx's."""
    recorder = Recorder()
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db",
              nginx_http_client_max_body_size="1k") as gw:
        serve(gw, "sized", recorder.port)
        ask = b"POST /sized HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
        exact = ask + b"Content-Length: 1024\r\n\r\n" + b"x" * 1024
        wait_for(lambda: status_of(raw(gw, exact)) == 200, 10, "the route")
        refused = [ask + b"Content-Length: 1025\r\nExpect: 100-continue\r\n\r\n",
                   ask + b"Transfer-Encoding: chunked\r\n\r\n400\r\n" + b"y" * 1024 +
                   b"\r\n1\r\nz\r\n0\r\n\r\n"]
        for request in refused:
            answer = raw(gw, request)
            assert status_of(answer) == 413 and b"100 Continue" not in answer, answer
            assert seen(answer)["message"] == "Payload too large"
        assert recorder.received.count(b"POST / HTTP/1.1") == 1  # the 1,024-byte one only
        assert b"y" * 1024 not in recorder.received
        log = gw.running.output()
        assert "client intended to send too large body: 1025 bytes" in log
        assert "client intended to send too large chunked body: 1025+ bytes" in log


def test_headers_setting_turns_kongs_own_headers_off(tmp_path: Path) -> None:
    with upstream("quiet") as port, node(tmp_path, f"sqlite:///{tmp_path}/r.db",
                                         headers=["off"], headers_upstream=["off"]) as gw:
        serve(gw, "quiet", port)
        r = wait_for(lambda: (r := gw.proxy("/quiet")).status_code == 200 and r, 2,
                     "the route")
        own = {"via", "x-kong-upstream-latency", "x-kong-proxy-latency", "x-kong-request-id"}
        assert not own & {k.lower() for k in r.headers}
        sent = {k.lower() for k in r.json()["headers"]}
        assert "x-kong-request-id" not in sent and "via" not in sent
        missing = gw.proxy("/nowhere")
        assert missing.status_code == 404
        assert not {"server", "x-kong-request-id", "x-kong-response-latency"} & \
            {k.lower() for k in missing.headers}


class BigHeads(RawUpstream):
    """Answers ``/N`` with a response head of N bytes (a padding header fills it)."""

    def handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
            size = int(data.split(b" ", 2)[1].rsplit(b"/", 1)[1])
            start = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n"
            pad = size - len(start) - len(b"X-Pad: \r\n\r\n")
            conn.sendall(start + b"X-Pad: " + b"p" * pad + b"\r\n\r\nok")


def test_an_upstream_head_beyond_proxy_buffer_size_is_a_502(tmp_path: Path) -> None:
    """nginx's proxy_buffer_size under Kong's name: 6 KB heads pass once it is 8k (the
    default, a page, would refuse them), 10 KB heads are Kong's 502."""
    heads = BigHeads()
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db",
              nginx_proxy_proxy_buffer_size="8k") as gw:
        serve(gw, "big", heads.port)
        ok = wait_for(lambda: (r := gw.proxy("/big/6144")).status_code == 200 and r, 5,
                      "the route")
        assert len(ok.headers["x-pad"]) > 6000
        failed = gw.proxy("/big/10240")
        assert failed.status_code == 502
        assert failed.json()["message"] == \
            "An invalid response was received from the upstream server"
        wait_for(lambda: "upstream sent too big header" in gw.running.output(), 5, "the error log")
