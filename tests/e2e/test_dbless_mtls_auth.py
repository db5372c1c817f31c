"""Seed 003's mTLS flow in DB-less mode (issue 12's acceptance): the CA, the service, the
route with mtls-auth and the consumer with its mtls-auth credential all come from kong.yml
(seed 003's declarative example, its CA and credential filled in); curl without a
certificate gets the 401, with the seed's client certificate the 200."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.gateway import Node, node, upstream
from tests.e2e.proc import curl, wait_for
from tests.pki import Pki

pytestmark = pytest.mark.e2e

CA_ID = "a4e9ee1a-1f1f-4574-bffd-0583ed32d99a"  # seed 003's example id


def kong_yml(pki: Pki, port: int) -> dict[str, Any]:
    """Seed 003's example, shaped as its text shows it: format 2.1, the plugin nested in the
    route, the route in the service."""
    return {
        "_format_version": "2.1",
        "ca_certificates": [{"id": CA_ID, "cert": pki.read("s003/ca.crt")}],
        "services": [{
            "name": "secure-service", "url": f"http://127.0.0.1:{port}",
            "routes": [{
                "name": "secure-route", "paths": ["/secure"],
                "plugins": [{"name": "mtls-auth", "config": {"ca_certificates": [CA_ID]}}]}],
        }, {
            "name": "open-service", "url": f"http://127.0.0.1:{port}",
            "routes": [{"name": "open-route", "paths": ["/open"]}]}],
        "consumers": [{"username": "trusted-partner",
                       "mtls_auth_credentials": [{"subject_name": "CN=api-client"}]}],
    }


def get(gw: Node, path: str, *args: str) -> tuple[int, Any]:
    code, body = curl("-k", *args, f"https://127.0.0.1:{gw.https_port}{path}")
    try:
        return code, json.loads(body)
    except ValueError:
        return code, body


def test_seed_003_flow_from_kong_yml(tmp_path: Path, pki: Pki) -> None:
    client = ("--cert", pki.path("s003/client.crt"), "--key", pki.path("s003/client.key"))
    other = ("--cert", pki.path("s001/client.crt"), "--key", pki.path("s001/client.key"))
    with upstream("echo") as port:
        (tmp_path / "kong.yml").write_text(yaml.safe_dump(kong_yml(pki, port)))
        with node(tmp_path, "off", declarative_config=str(tmp_path / "kong.yml")) as gw:
            wait_for(lambda: get(gw, "/open")[0] == 200, 10, "the file's routes")
            assert get(gw, "/secure") == (
                401, {"message": "No required TLS certificate was sent"})
            code, seen = get(gw, "/secure", *client)
            assert code == 200, seen
            headers = {k.lower(): v for k, v in seen["headers"].items()}
            assert headers["x-consumer-username"] == "trusted-partner"
            assert get(gw, "/secure", *other) == (
                401, {"message": "TLS certificate failed verification"})
            assert gw.proxy("/secure").status_code == 401  # plain HTTP: no certificate
            assert get(gw, "/open")[0] == 200  # no plugin, no certificate needed
            # the credential and the CA are what the Admin API shows, read-only
            r = gw.call("GET", "/consumers/trusted-partner/mtls-auth")
            assert r.status_code == 200, r.text
            assert [c["subject_name"] for c in r.json()["data"]] == ["CN=api-client"]
            assert gw.call("GET", f"/ca_certificates/{CA_ID}").status_code == 200
            r = gw.call("POST", f"/ca_certificates/{CA_ID}/crl", json={"crl": "x"})
            assert r.status_code == 405, r.text  # a write, like every other
