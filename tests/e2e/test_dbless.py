"""DB-less mode end to end: a node started from a kong.yml serves it (routes and certificates
by SNI), and POST /config switches the whole configuration atomically under traffic."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.gateway import node, upstream
from tests.e2e.proc import curl, launch, wait_for
from tests.pki import Pki

pytestmark = pytest.mark.e2e


def kong_yml(port: int, *, with_cert: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"_format_version": "3.0", "services": [{
        "name": "api", "url": f"http://127.0.0.1:{port}",
        "routes": [{"name": "api", "paths": ["/api"]}]}]}
    if with_cert:
        doc["certificates"] = [{"cert": "{vault://env/h12-cert}",
                                "key": "{vault://env/h12-key}", "snis": ["kong-server"]}]
    return doc


def traffic(url: str, stop: threading.Event, seen: list[tuple[int, str]]) -> None:
    """One keep-alive client, sequential requests: the order of answers is the order of the
    configurations served."""
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=10) as client:
        while not stop.is_set() and time.monotonic() < deadline and len(seen) < 100_000:
            try:
                r = client.get(url)
                seen.append((r.status_code, r.headers.get("x-upstream", "")))
            except httpx.HTTPError as exc:
                seen.append((0, type(exc).__name__))


def test_dbless_serves_the_file_and_switches_atomically(tmp_path: Path, pki: Pki) -> None:
    env = {"H12_CERT": pki.read("s003/server.crt"), "H12_KEY": pki.read("s003/server.key")}
    with upstream("old") as old_port, upstream("new") as new_port:
        (tmp_path / "kong.yml").write_text(yaml.safe_dump(kong_yml(old_port)))
        with node(tmp_path, "off", env=env, declarative_config=str(tmp_path / "kong.yml")) as gw:
            assert gw.proxy("/api").headers["x-upstream"] == "old"
            code, _ = curl("--cacert", pki.path("s003/ca.crt"), "--resolve",
                           f"kong-server:{gw.https_port}:127.0.0.1",
                           f"https://kong-server:{gw.https_port}/api")
            assert code == 200  # the file's certificate, chosen by SNI, verifies

            r = gw.call("POST", "/services", json={"name": "x", "host": "x.test"})
            assert r.status_code == 405 and r.json()["code"] == 12

            stop = threading.Event()
            seen: list[tuple[int, str]] = []
            loop = threading.Thread(target=traffic, args=(
                f"http://127.0.0.1:{gw.http_port}/api", stop, seen))
            loop.start()
            try:
                wait_for(lambda: len(seen) > 20, 20, "traffic before the switch")
                r = gw.call("POST", "/config", json=kong_yml(new_port, with_cert=False))
                assert r.status_code == 201, r.text
                wait_for(lambda: seen and seen[-1][1] == "new", 5, "the new configuration")
                mark = len(seen)
                wait_for(lambda: len(seen) > mark + 20, 20, "traffic after the switch")
            finally:
                stop.set()
                loop.join(timeout=30)
            assert {code for code, _ in seen} == {200}, [s for s in seen if s[0] != 200][:5]
            names = [name for _, name in seen]
            first_new = names.index("new")
            assert set(names[:first_new]) == {"old"} and set(names[first_new:]) == {"new"}

            bad = gw.call("POST", "/config", json={"_format_version": "3.0",
                                                   "services": [{"name": "api"}]})
            assert bad.status_code == 400 and bad.json()["code"] == 14
            assert gw.proxy("/api").headers["x-upstream"] == "new"


def test_an_invalid_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "kong.yml").write_text('_format_version: "3.0"\nservices:\n- name: x\n')
    running = launch(tmp_path, {"database": "off",
                                "declarative_config": str(tmp_path / "kong.yml")})
    try:
        assert running.proc.wait(timeout=60) == 1
    finally:
        running.stop()
    output = running.output()
    assert "cannot load the declarative configuration" in output
    assert "required field missing" in output
