"""1 GiB each way through an HTTPS listener (our TLS layer, gateway/proxy/tls.py) with the
proxy's memory flat: back-pressure passes through the TLS layer in both directions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.test_proxy import GIB, live, peak_rss_while, rss_kib, setup

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work: Path = tmp_path_factory.mktemp("tls-streaming")
    with node(work, f"sqlite:///{work}/r.db") as running:
        yield running


def test_one_gib_streams_both_ways_over_https_in_bounded_memory(gw: Node) -> None:
    with upstream("bulk") as up:
        setup(gw, {"name": "bulk", "url": f"http://127.0.0.1:{up}"},
              {"name": "bulk", "paths": ["/bulk"]})
        live(gw, "/bulk/bytes/10")
        url = f"https://127.0.0.1:{gw.https_port}/bulk"
        pid = gw.running.proc.pid
        baseline = rss_kib(pid)
        peak, out = peak_rss_while(pid, ["curl", "-sk", "-o", "/dev/null", "-w",
                                         "%{http_code} %{size_download}",
                                         f"{url}/bytes/{GIB}"])
        assert out == f"200 {GIB}"
        assert peak - baseline < 64 * 1024, f"download grew the proxy by {peak - baseline} KiB"
        upload = f"head -c {GIB} /dev/zero | curl -sk -T - -X POST {url}/count"
        peak, out = peak_rss_while(pid, [upload], shell_input=upload)
        assert '"size": 1073741824' in out, out
        assert peak - baseline < 64 * 1024, f"upload grew the proxy by {peak - baseline} KiB"
