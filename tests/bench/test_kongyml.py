"""The configurations bench/extra.py measures: they validate as kong.yml, and a real node
loaded with them answers as the benchmark expects (otherwise wrk would measure 401s or 404s,
which the benchmark counts as a failed run, not as a number)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from bench.kongyml import (
    base_config,
    client_cert_config,
    mtls_config,
    noop_config,
    routes_config,
)
from gateway import registry
from gateway.db.store import Store
from gateway.declarative.parse import parse_text
from tests.e2e.gateway import Node, node, upstream
from tests.e2e.proc import curl
from tests.pki import Pki

CA_ID = str(uuid.uuid4())


@pytest.fixture(scope="module")
def store() -> Store:
    return Store("sqlite://", registry.build())


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    with upstream("origin") as port:
        yield port


def test_base_and_routes_validate(store: Store) -> None:
    assert len(parse_text(store, json.dumps(base_config(9))).entries["routes"]) == 1
    config = parse_text(store, json.dumps(routes_config(9, range(1000))))
    paths = [e.values["paths"] for e in config.entries["routes"]]
    assert len(paths) == 1000 and paths[998] == ["/r0998"]


def test_mtls_validates(store: Store, pki: Pki) -> None:
    config = parse_text(store, json.dumps(mtls_config(9, pki.read("s003/ca.crt"), CA_ID,
                                                      "api-client")))
    plugin = config.entries["plugins"][0].values
    assert plugin["name"] == "mtls-auth" and plugin["config"]["ca_certificates"] == [CA_ID]
    assert config.entries["mtls_auth_credentials"][0].values["subject_name"] == "api-client"


def test_client_cert_config_validates(store: Store, pki: Pki) -> None:
    cert_id = str(uuid.uuid4())
    config = parse_text(store, json.dumps(client_cert_config(
        9, pki.read("s003/ca.crt"), CA_ID, pki.read("s003/client.crt"),
        pki.read("s003/client.key"), cert_id)))
    service = config.entries["services"][0].values
    assert service["client_certificate"] == {"id": cert_id}
    assert service["ca_certificates"] == [CA_ID] and service["tls_verify"] is True
    assert config.entries["certificates"][0].values["id"] == cert_id


def test_noop_placement() -> None:
    doc, how = noop_config(9, ["noop", "noop2", "noop3"])
    route = doc["services"][0]["routes"][0]
    assert [p["name"] for p in route["plugins"]] == ["noop", "noop2", "noop3"]
    assert "plugins" not in doc and "on the route" in how
    doc, how = noop_config(9, ["noop"])  # one name: route, service and global instances
    assert doc["plugins"] == doc["services"][0]["plugins"] == [{"name": "noop"}]
    assert doc["services"][0]["routes"][0]["plugins"] == [{"name": "noop"}]


def _node_with(tmp_path: Path, doc: dict[str, Any]) -> AbstractContextManager[Node]:
    """A DB-less node started with the document (the bench imports it into SQLite)."""
    (tmp_path / "kong.yml").write_text(json.dumps(doc))
    return node(tmp_path, "off", declarative_config=str(tmp_path / "kong.yml"))


@pytest.mark.e2e
def test_mtls_config_authenticates(tmp_path: Path, pki: Pki, origin: int) -> None:
    doc = mtls_config(origin, pki.read("s003/ca.crt"), CA_ID, "api-client")
    with _node_with(tmp_path, doc) as gw:
        url = f"https://127.0.0.1:{gw.https_port}/"
        assert curl("-k", url)[0] == 401
        code, body = curl("-k", "--cert", pki.path("s003/client.crt"), "--key",
                          pki.path("s003/client.key"), url)
        assert code == 200
        headers = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
        assert headers["x-consumer-username"] == "api-client"  # identified, not anonymous


@pytest.mark.e2e
def test_routes_config_routes_the_last_prefixes(tmp_path: Path, origin: int) -> None:
    with _node_with(tmp_path, routes_config(origin, range(1000))) as gw:
        code, body = curl("-k", f"https://127.0.0.1:{gw.https_port}/r0998/x")
        assert code == 200 and json.loads(body)["path"] == "/x"
        assert curl("-k", f"https://127.0.0.1:{gw.https_port}/other")[0] == 404
