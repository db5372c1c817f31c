"""A route regex cannot stall the node: with ``~/r/(a+)+$`` routed, requests for
``/r/aaaa…a!`` (which take a backtracking engine about 2**n steps) keep arriving while other
requests are proxied, and every one of them answers at once."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.loops import RequestLoop
from tests.e2e.proc import wait_for

pytestmark = pytest.mark.e2e

EVIL_PATH = "/r/" + "a" * 40 + "!"  # 2**40 steps for Python's re: the node would never answer
CONCURRENT_WITHIN = 0.1  # seconds, the bound for the concurrent proxied request
EVIL_WITHIN = 1.0  # seconds: the catastrophic request itself, generous for a loaded machine


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, int]]:
    work = tmp_path_factory.mktemp("regex-node")
    with upstream("echo") as up, node(work, f"sqlite:///{work}/r.db") as running:
        yield running, up


def test_a_catastrophic_regex_request_does_not_stall_other_requests(gw: tuple[Node, int]
                                                                     ) -> None:
    running, up = gw
    for name, paths in (("evil", [r"~/r/(a+)+$"]), ("quick", ["/quick"])):
        assert running.call("PUT", f"/services/{name}",
                            json={"url": f"http://127.0.0.1:{up}"}).status_code == 200
        assert running.call("PUT", f"/routes/{name}", json={
            "paths": paths, "service": {"name": name}}).status_code == 200
    wait_for(lambda: running.proxy("/r/aaa").status_code == 200, 2, "the regex route")
    wait_for(lambda: running.proxy("/quick").status_code == 200, 2, "the plain route")
    base = f"http://127.0.0.1:{running.http_port}"
    quick: list[float] = []
    with RequestLoop(base + EVIL_PATH) as hammer, httpx.Client(timeout=5) as client:
        wait_for(lambda: hammer.times or hammer.failures, 5, "a first catastrophic request")
        for _ in range(20):
            started = time.monotonic()
            assert client.get(base + "/quick").status_code == 200
            quick.append(time.monotonic() - started)
    assert hammer.failures == []
    assert hammer.statuses == {404}  # the regex does not match: no route, Kong's 404
    assert len(hammer.times) >= 20 and max(hammer.times) < EVIL_WITHIN, hammer.times
    # the median, as a margin against one slow answer on a loaded machine: a stalled loop
    # would make every one of them wait
    assert statistics.median(quick) < CONCURRENT_WITHIN, quick


def test_a_regex_route_strips_its_match_and_keeps_its_captures(gw: tuple[Node, int]
                                                               ) -> None:
    running, up = gw
    assert running.call("PUT", "/services/users", json={
        "url": f"http://127.0.0.1:{up}/base"}).status_code == 200
    assert running.call("PUT", "/routes/users", json={
        "paths": [r"~/users/(?<id>\d+)"], "service": {"name": "users"}}).status_code == 200
    r = wait_for(lambda: (x := running.proxy("/users/42/posts")).status_code == 200 and x, 2,
                 "the capture route")
    assert r.json()["path"] == "/base/posts"
    assert running.proxy("/users/x/posts").status_code == 404

