"""Custom plugins in a real node (``plugins`` + ``plugin_path``), and issue 11's "consumer-
scoped plugin config applies": the test plugin ``echo-conf`` (tests/plugins/fixtures) tells
the upstream which of its instances ran, after mtls-auth named the consumer from the client
certificate (curl --cert, as seed 003)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.proc import RAMPARTS, wait_for
from tests.e2e.test_seed_003_mtls_auth import _leaf, cert, eventually, request
from tests.pki import Pki

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parents[1] / "plugins" / "fixtures"


@pytest.fixture(scope="module")
def work(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("custom-plugins")
    for name in ("ca.crt", "ca.key", "client.crt", "client.key"):
        shutil.copy(pki.dir / "s003" / name, d / name)
    _leaf(d, "second", "second-client", (-1, 30))
    _leaf(d, "third", "third-client", (-1, 30))
    return d


@pytest.fixture(scope="module")
def gw(work: Path) -> Iterator[Node]:
    # Kong's syntax: a comma-separated list
    with node(work, f"sqlite:///{work}/r.db", plugins="bundled, echo-conf",
              plugin_path=[str(FIXTURES)]) as running:
        yield running


def created(gw: Node, path: str, body: dict[str, Any]) -> Any:
    r = gw.call("POST", path, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def seen_tag(gw: Node, work: Path, path: str, *args: str) -> str | None:
    code, seen = request(gw, work, path, *args)
    assert code == 200, seen
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    return headers.get("x-echo-conf")


def test_the_node_lists_the_custom_plugin(gw: Node) -> None:
    available = gw.call("GET", "/").json()["plugins"]["available_on_server"]
    assert available["echo-conf"] == {"version": "2.1.0", "priority": 900}
    assert "echo-conf" in gw.call("GET", "/plugins/enabled").json()["enabled_plugins"]
    schema = gw.call("GET", "/schemas/plugins/echo-conf")
    assert schema.status_code == 200, schema.text
    bad = gw.call("POST", "/plugins", json={"name": "echo-conf", "config": {}})
    assert bad.status_code == 400
    assert bad.json()["fields"] == {"config": {"tag": "required field missing"}}
    # a plugin that exists on disk but is not in `plugins`: Kong's Admin API error
    off = gw.call("POST", "/plugins", json={"name": "noop"})
    assert off.status_code == 400
    assert off.json()["fields"] == {
        "name": "plugin 'noop' not enabled; add it to the 'plugins' configuration property"}


def test_consumer_scoped_config_applies(gw: Node, work: Path) -> None:
    """Kong's lookup (kong.md §5.1): route+consumer > consumer > route, the consumer being
    the one mtls-auth (priority 1600) identified before echo-conf's turn (900)."""
    with upstream("echo") as up:
        ca = created(gw, "/ca_certificates", {"cert": (work / "ca.crt").read_text()})
        created(gw, "/services", {"name": "s", "url": f"http://127.0.0.1:{up}"})
        # matchable only once every plugin exists (opened by the PATCH at the end)
        route = created(gw, "/services/s/routes", {"name": "r", "paths": ["/scoped"],
                                                   "hosts": ["pending.invalid"]})
        created(gw, "/consumers", {"username": "guest"})
        ids = {}
        for username, subject in (("api-client", "CN=api-client"),
                                  ("second", "CN=second-client")):
            ids[username] = created(gw, "/consumers", {"username": username})["id"]
            created(gw, f"/consumers/{username}/mtls-auth", {"subject_name": subject})
        created(gw, "/routes/r/plugins", {"name": "mtls-auth", "config": {
            "ca_certificates": [ca["id"]], "anonymous": "guest"}})
        created(gw, "/routes/r/plugins", {"name": "echo-conf", "config": {"tag": "route"}})
        created(gw, "/consumers/api-client/plugins", {"name": "echo-conf",
                                                      "config": {"tag": "api-client"}})
        created(gw, "/consumers/second/plugins", {"name": "echo-conf",
                                                  "config": {"tag": "second"}})
        created(gw, "/plugins", {"name": "echo-conf", "config": {"tag": "second on r"},
                                 "route": {"id": route["id"]},
                                 "consumer": {"id": ids["second"]}})
        opened = gw.call("PATCH", "/routes/r", json={"hosts": None})
        assert opened.status_code == 200, opened.text

        eventually(gw, work, "/scoped", 200, *cert("client"))
        assert seen_tag(gw, work, "/scoped", *cert("client")) == "api-client"   # consumer
        assert seen_tag(gw, work, "/scoped", *cert("second")) == "second on r"   # route+consumer
        assert seen_tag(gw, work, "/scoped") == "route"              # anonymous: no certificate
        # a trusted certificate that names no consumer: the anonymous one, the route's config
        assert seen_tag(gw, work, "/scoped", *cert("third")) == "route"
        # the response side ran the same instance (header_filter)
        out = subprocess.run(["curl", "-sSk", "-o", "/dev/null", "-D", "-", *cert("client"),
                              f"https://127.0.0.1:{gw.https_port}/scoped"], cwd=work,
                             capture_output=True, text=True, timeout=30)
        assert "x-echo-conf: api-client" in out.stdout.lower(), out.stdout


def start(tmp_path: Path, settings: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "r.yaml"
    conf.write_text(f"database: sqlite:///{tmp_path}/r.db\nadmin_listen: 127.0.0.1:0\n"
                    f"proxy_listen: 'off'\n{settings}")
    return subprocess.run([RAMPARTS, "start", "-c", str(conf)], capture_output=True,
                          text=True, timeout=60)


def test_a_plugin_that_cannot_load_stops_the_start(tmp_path: Path) -> None:
    out = start(tmp_path, f"plugins: [bundled, echo-conf, nope]\nplugin_path: {FIXTURES}\n")
    assert out.returncode == 1
    assert "nope plugin is enabled but not installed: no module ramparts_plugins.nope" \
        in out.stderr, out.stderr
    broken = tmp_path / "plugins" / "ramparts_plugins" / "broken"
    broken.mkdir(parents=True)
    (broken / "schema.py").write_text("PLUGIN = None\n")
    (broken / "handler.py").write_text("")
    out = start(tmp_path, f"plugins: broken\nplugin_path: {tmp_path / 'plugins'}\n")
    assert out.returncode == 1
    assert "plugin 'broken': ramparts_plugins.broken.handler must define exactly one " \
        "subclass" in out.stderr, out.stderr
    out = start(tmp_path, "plugin_path: /nonexistent/dir\n")
    assert out.returncode == 1 and "'/nonexistent/dir' is not a directory" in out.stderr


def test_a_plugin_in_use_but_not_enabled_fails_closed(tmp_path: Path) -> None:
    """Kong refuses to start ("<name> plugin is in use but not enabled"); a node that does
    not enable a configured plugin keeps serving, but never the routes that plugin covers."""
    database = f"sqlite:///{tmp_path}/r.db"
    with upstream("echo") as up:
        with node(tmp_path, database, plugins="bundled,echo-conf",
                  plugin_path=[str(FIXTURES)]) as first:
            created(first, "/services", {"name": "s", "url": f"http://127.0.0.1:{up}"})
            created(first, "/services/s/routes", {"name": "tagged", "paths": ["/tagged"]})
            created(first, "/services/s/routes", {"name": "plain", "paths": ["/plain"]})
            created(first, "/routes/tagged/plugins", {"name": "echo-conf",
                                                      "config": {"tag": "t"}})
            wait_for(lambda: first.proxy("/tagged").headers.get("X-Echo-Conf") == "t", 10,
                     "echo-conf on /tagged")
        with node(tmp_path, database) as second:  # plugins: bundled
            assert second.proxy("/plain").status_code == 200
            refused = second.proxy("/tagged")
            assert refused.status_code == 500, refused.text
            assert refused.json()["message"] == "An unexpected error occurred"
            log = second.running.log.read_text()
            assert "echo-conf plugin is in use but not enabled" in log, log[-3000:]

