"""The proxy as a client sees it: routing, headers, Kong's errors, streaming, retries."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.proc import curl, free_port, wait_for
from tests.e2e.raw import RawUpstream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def up() -> Iterator[int]:
    with upstream("echo") as port:
        yield port


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("proxy-node")
    with node(work, f"sqlite:///{work}/r.db") as running:
        yield running


def setup(gw: Node, service: dict[str, Any], route: dict[str, Any]) -> None:
    name = service["name"]
    r = gw.call("PUT", f"/services/{name}", json=service)
    assert r.status_code == 200, r.text
    r = gw.call("PUT", f"/routes/{route['name']}", json={**route, "service": {"name": name}})
    assert r.status_code == 200, r.text


def live(gw: Node, path: str, status: int = 200, **kwargs: Any) -> httpx.Response:
    """Poll the proxy until the route answers as expected (the reload deadline is 1 s)."""
    r: httpx.Response = wait_for(
        lambda: (r := gw.proxy(path, **kwargs)).status_code == status and r, 1,
        f"{path} to answer {status}")
    return r


def test_forwarded_headers_and_strip_path(gw: Node, up: int) -> None:
    setup(gw, {"name": "echo", "url": f"http://127.0.0.1:{up}/base"},
          {"name": "echo", "paths": ["/api"]})
    r = live(gw, "/api/users?x=1&y=%20", headers={"X-Forwarded-For": "10.0.0.9",
                                                   "Connection": "close, X-Drop",
                                                   "X-Drop": "secret", "Via": "1.0 edge"})
    seen = r.json()
    assert seen["path"] == "/base/users" and seen["query"] == "x=1&y=%20"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["host"] == f"127.0.0.1:{up}"
    assert headers["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http" and headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-host"] == "127.0.0.1"
    assert headers["x-forwarded-port"] == str(gw.http_port)
    assert headers["x-forwarded-path"] == "/api/users"
    assert headers["x-forwarded-prefix"] == "/api"
    assert headers["via"] == "1.0 edge, 1.1 ramparts/0.1.0"
    assert "x-drop" not in headers and "connection" not in headers
    assert r.headers["via"] == "1.1 ramparts/0.1.0" and r.headers["x-upstream"] == "echo"
    assert int(r.headers["x-kong-upstream-latency"]) >= 0
    assert len(r.headers["x-kong-request-id"]) == 32
    # the gateway answers `Expect: 100-continue` itself; the upstream never sees it
    code, body = curl("-H", "Expect: 100-continue", "--data-binary", "x" * 2048,
                      f"http://127.0.0.1:{gw.http_port}/api/upload")
    assert code == 200 and json.loads(body)["body_size"] == 2048
    assert "expect" not in {k.lower() for k in json.loads(body)["headers"]}


def test_upstream_connections_are_reused(gw: Node, up: int) -> None:
    setup(gw, {"name": "pooled", "url": f"http://127.0.0.1:{up}"},
          {"name": "pooled", "paths": ["/pooled"]})
    live(gw, "/pooled")
    peers = {tuple(gw.proxy("/pooled").json()["peer"]) for _ in range(20)}
    assert len(peers) == 1  # one keep-alive connection served every sequential request


def test_preserve_host_and_no_strip(gw: Node, up: int) -> None:
    setup(gw, {"name": "keep", "url": f"http://127.0.0.1:{up}"},
          {"name": "keep", "hosts": ["keep.test"], "strip_path": False,
           "preserve_host": True})
    r = live(gw, "/a/b", headers={"Host": "keep.test"})
    seen = r.json()
    assert seen["path"] == "/a/b"
    assert {k.lower(): v for k, v in seen["headers"].items()}["host"] == "keep.test"


def test_https_only_routes(gw: Node, up: int) -> None:
    setup(gw, {"name": "secure", "url": f"http://127.0.0.1:{up}"},
          {"name": "upgrade", "paths": ["/secure"], "protocols": ["https"]})
    r = live(gw, "/secure", 426)
    assert r.json()["message"] == "Please use HTTPS protocol"
    assert r.headers["upgrade"] == "TLS/1.2, HTTP/1.1" and r.headers["connection"] == "Upgrade"
    setup(gw, {"name": "secure", "url": f"http://127.0.0.1:{up}"},
          {"name": "redirect", "paths": ["/moved"], "protocols": ["https"],
           "https_redirect_status_code": 301})
    r = live(gw, "/moved/x?q=1", 301, headers={"Host": "site.test:8000"})
    assert r.headers["location"] == "https://site.test/moved/x?q=1"
    r = httpx.get(f"https://127.0.0.1:{gw.https_port}/secure", verify=False, timeout=10)
    assert r.status_code == 200


def test_kong_error_responses(gw: Node, up: int) -> None:
    r = gw.proxy("/definitely/not/routed")
    assert r.status_code == 404
    body = r.json()
    assert body["message"] == "no Route matched with those values"
    assert body["request_id"] == r.headers["x-kong-request-id"]
    assert r.text.startswith('{\n  "message":')  # Kong's template
    r = gw.proxy("/definitely/not/routed", headers={"Accept": "text/plain"})
    assert r.text.startswith("no Route matched with those values\nrequest_id: ")
    r = gw.call("POST", "/routes", json={"name": "orphan", "paths": ["/orphan"]})
    assert r.status_code == 201
    r = live(gw, "/orphan", 503)
    assert r.json()["message"] == "no Service found with those values"

    dead = free_port()
    setup(gw, {"name": "dead", "url": f"http://127.0.0.1:{dead}", "retries": 0},
          {"name": "dead", "paths": ["/dead"]})
    r = live(gw, "/dead", 502)
    assert r.json()["message"] == "An invalid response was received from the upstream server"
    setup(gw, {"name": "slow", "url": f"http://127.0.0.1:{up}/slow", "read_timeout": 200,
               "retries": 0},
          {"name": "slow", "paths": ["/slow"]})
    r = live(gw, "/slow/2", 504)
    assert r.json()["message"] == "The upstream server is timing out"
    assert "timed out" in gw.running.output()


class Hangup(RawUpstream):
    """Accepts connections and closes them without answering; counts them."""

    def handle(self, conn: socket.socket) -> None:
        conn.recv(65536)
        conn.close()


class Deaf(RawUpstream):
    """Accepts connections, reads the request's first bytes, then never reads again."""

    def handle(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.recv(1024)
        self.held.append(conn)  # open, unread: the proxy's writes stall

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_write_timeout(gw: Node, tmp_path: Path) -> None:
    deaf = Deaf()
    try:
        setup(gw, {"name": "deaf", "url": f"http://127.0.0.1:{deaf.port}", "retries": 0,
                   "write_timeout": 300, "read_timeout": 60000},
              {"name": "deaf", "paths": ["/deaf"]})


        def routed() -> bool:  # the route is live once a request waits instead of a 404
            try:
                return gw.proxy("/deaf", timeout=0.5).status_code != 404
            except httpx.TimeoutException:
                return True

        wait_for(routed, 1, "the route to the deaf upstream")
        big = tmp_path / "big.bin"
        with big.open("wb") as f:
            f.truncate(64 * 1024 * 1024)  # far more than the socket buffers hold
        started = time.monotonic()
        code, _ = curl("-o", "/dev/null", "--max-time", "20", "--data-binary", f"@{big}",
                       f"http://127.0.0.1:{gw.http_port}/deaf")
        assert code == 504
        assert time.monotonic() - started < 10  # the write timeout, not the 60 s read one
        assert f"service deaf: http://127.0.0.1:{deaf.port} timed out sending the request " \
               "(write_timeout)" in gw.running.output()
    finally:
        deaf.close()


def test_retries(gw: Node) -> None:
    hangup = Hangup()
    try:
        setup(gw, {"name": "flaky", "url": f"http://127.0.0.1:{hangup.port}", "retries": 2},
              {"name": "flaky", "paths": ["/flaky"]})
        live(gw, "/flaky", 502)
        before = hangup.accepted
        assert gw.proxy("/flaky").status_code == 502
        assert hangup.accepted - before == 3  # the first try and two retries
        r = httpx.post(f"http://127.0.0.1:{gw.http_port}/flaky", content=b"x", timeout=10)
        assert r.status_code == 502  # a POST with a body is not sent twice
    finally:
        hangup.sock.close()


def test_disabled_service_and_live_route_changes(gw: Node, up: int) -> None:
    setup(gw, {"name": "toggle", "url": f"http://127.0.0.1:{up}"},
          {"name": "toggle", "paths": ["/toggle"]})
    live(gw, "/toggle")
    gw.call("PATCH", "/services/toggle", json={"enabled": False})
    live(gw, "/toggle", 404)
    gw.call("PATCH", "/services/toggle", json={"enabled": True})
    live(gw, "/toggle")
    gw.call("DELETE", "/routes/toggle")
    live(gw, "/toggle", 404)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_rss_while(pid: int, command: list[str], shell_input: str | None = None
                   ) -> tuple[int, str]:
    peak = rss_kib(pid)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, shell=shell_input is not None)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=10)
    return peak, out


GIB = 1024 ** 3


def test_one_gib_streams_both_ways_in_bounded_memory(gw: Node, up: int) -> None:
    setup(gw, {"name": "bulk", "url": f"http://127.0.0.1:{up}"},
          {"name": "bulk", "paths": ["/bulk"]})
    live(gw, "/bulk/bytes/10")
    pid = gw.running.proc.pid
    baseline = rss_kib(pid)
    peak, out = peak_rss_while(pid, ["curl", "-s", "-o", "/dev/null", "-w",
                                     "%{http_code} %{size_download}",
                                     f"http://127.0.0.1:{gw.http_port}/bulk/bytes/{GIB}"])
    assert out == f"200 {GIB}"
    assert peak - baseline < 64 * 1024, f"download grew the proxy by {peak - baseline} KiB"
    upload = (f"head -c {GIB} /dev/zero | curl -s -T - -X POST "
              f"http://127.0.0.1:{gw.http_port}/bulk/count")
    peak, out = peak_rss_while(pid, [upload], shell_input=upload)
    assert '"size": 1073741824' in out
    assert peak - baseline < 64 * 1024, f"upload grew the proxy by {peak - baseline} KiB"


def test_health_path_settings(tmp_path: Path) -> None:
    with node(tmp_path, f"sqlite:///{tmp_path}/r.db", health_path="/ready") as custom:
        assert custom.proxy("/ready").json()["status"] == "ok"
        assert custom.proxy("/__health").status_code == 404
    (tmp_path / "off").mkdir()
    with node(tmp_path / "off", f"sqlite:///{tmp_path}/off.db", health_path="") as off:
        assert off.proxy("/__health").status_code == 404


def test_client_leaving_a_stream_stops_the_upstream_read(gw: Node, up: int) -> None:
    setup(gw, {"name": "endless", "url": f"http://127.0.0.1:{up}"},
          {"name": "endless", "paths": ["/endless", "/streams"], "strip_path": False})
    live(gw, "/streams")  # any path of the service: the route is live

    def state() -> str:
        return str(httpx.get(f"http://127.0.0.1:{up}/streams?id=s1").json()["state"])

    with httpx.stream("GET", f"http://127.0.0.1:{gw.http_port}/endless?id=s1",
                      timeout=10) as r:
        assert r.status_code == 200
        # keep the iterator referenced: a generator dropped (or left by `break`) is closed,
        # and httpx then closes the connection, i.e. the client leaves
        chunks = r.iter_bytes()
        ticks, started = 0, time.monotonic()
        while time.monotonic() - started < 0.5:  # the stream flows while the client stays
            ticks += next(chunks).count(b"tick")
        assert ticks >= 5 and state() == "open"
    # the client is gone: the proxy must stop reading (and close) the upstream stream
    wait_for(lambda: state() == "closed", 3, "the upstream stream to be closed")
    assert "service endless: the client went away during the response" in gw.running.output()


def test_header_bytes_pass_unchanged(gw: Node, up: int) -> None:
    setup(gw, {"name": "bytes", "url": f"http://127.0.0.1:{up}"},
          {"name": "bytes", "paths": ["/hdr"]})
    live(gw, "/hdr")
    r = httpx.get(f"http://127.0.0.1:{gw.http_port}/hdr", timeout=10,
                  headers=[(b"X-File-Name", "résumé".encode()), (b"Via", b"1.0 a"),
                           (b"Via", b"1.1 b")])
    headers = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert headers["x-file-name"] == "résumé"  # UTF-8 in, the same UTF-8 out
    assert headers["via"] == "1.0 a, 1.1 b, 1.1 ramparts/0.1.0"  # every hop kept


def test_ipv6_upstream(gw: Node) -> None:
    with upstream("six", host="::1") as port:
        setup(gw, {"name": "six", "url": f"http://[::1]:{port}"},
              {"name": "six", "paths": ["/six"]})
        r = live(gw, "/six")
        assert r.headers["x-upstream"] == "six"


def test_name_resolution_failure_is_503(gw: Node) -> None:
    setup(gw, {"name": "nowhere", "url": "http://nowhere.invalid"},
          {"name": "nowhere", "paths": ["/nowhere"]})
    r = live(gw, "/nowhere", 503)
    assert r.json()["message"] == "name resolution failed"
