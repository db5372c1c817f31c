"""The seeds' curl lines, run with bash and curl against a real node, on both databases.

Seed 003's lines are copied as written; only ``localhost:8001`` becomes the test's port.
Seeds 002 and 004 describe the Admin API calls without curl lines; they are written here in
the style of Kong's own documentation. Expected statuses and bodies are Kong's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.e2e.proc import Running, ramparts, shell
from tests.pki import Pki

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Running]:
    work = tmp_path_factory.mktemp(f"seeds-{request.param}")
    if request.param == "sqlite":
        with ramparts(work, {"database": f"sqlite:///{work}/seeds.db"}) as running:
            yield running
        return
    name = create_pg_database("ramparts_seeds")
    try:
        with ramparts(work, {"database": pg_url(name)}) as running:
            yield running
    finally:
        drop_pg_database(name)


@pytest.fixture
def run(node: Running, pki: Pki, tmp_path: Path) -> Any:
    for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key"):
        shutil.copy(pki.dir / "s003" / name, tmp_path / name)
    shutil.copy(pki.dir / "s001" / "rootCA.pem", tmp_path / "rootCA.pem")
    port = node.admin.rsplit(":", 1)[1]

    def run_line(line: str) -> tuple[int, Any]:
        return shell(line.replace("localhost:8001", f"localhost:{port}"), tmp_path)

    return run_line


def test_seed_003_lines(run: Any) -> None:
    code, ca = run('''curl -X POST http://localhost:8001/ca_certificates \\
--data "cert=$(cat ca.crt)"''')
    assert code == 201, ca
    assert set(ca) >= {"id", "cert", "created_at"}
    assert ca["cert"].startswith("-----BEGIN CERTIFICATE-----")

    code, svc = run('''curl -X POST http://localhost:8001/services \\
--data "name=secure-service" \\
--data "url=https://mockbin.org"''')
    assert code == 201, svc
    assert (svc["protocol"], svc["host"], svc["port"]) == ("https", "mockbin.org", 443)

    code, route = run('''curl -X POST http://localhost:8001/services/secure-service/routes \\
--data "name=secure-route" \\
--data "paths[]=/secure"''')
    assert code == 201, route
    assert route["paths"] == ["/secure"] and route["service"] == {"id": svc["id"]}

    # Kong requires config.ca_certificates: the seed's bare line is a 400 there too
    code, err = run('''curl -X POST http://localhost:8001/routes/secure-route/plugins \\
--data "name=mtls-auth"''')
    assert code == 400
    assert err["message"] == "schema violation (config.ca_certificates: required field missing)"
    code, plugin = run(f'''curl -X POST http://localhost:8001/routes/secure-route/plugins \\
--data "name=mtls-auth" \\
--data "config.ca_certificates={ca['id']}" \\
--data "config.revocation_check_mode=STRICT"''')
    assert code == 201, plugin
    assert plugin["config"]["ca_certificates"] == [ca["id"]]

    # not a Kong endpoint (seed 003's own): without a ca.crl the upload is a clear 400
    # (tests/e2e/test_mtls_auth_revocation.py makes the CRL with the seed's openssl line)
    code, body = run(f'''curl -X POST http://localhost:8001/ca_certificates/{ca['id']}/crl \\
--data "crl=$(cat ca.crl 2>/dev/null)"''')
    assert (code, body["message"]) == (400, "schema violation (crl: required field missing)")

    code, consumer = run('''curl -X POST http://localhost:8001/consumers \\
--data "username=trusted-partner"''')
    assert code == 201 and consumer["username"] == "trusted-partner"
    code, cred = run('''curl -X POST http://localhost:8001/consumers/trusted-partner/mtls-auth \\
--data "subject_name=CN=api-client"''')
    assert code == 201, cred
    assert cred["subject_name"] == "CN=api-client"
    assert cred["consumer"] == {"id": consumer["id"]}


def test_seed_002_certificate_per_route(run: Any) -> None:
    # upload the certificate, create an SNI for it, create a route using the SNI
    code, cert = run('''curl -X POST http://localhost:8001/certificates \\
-F "cert=@server.crt" -F "key=@server.key" -F "snis[]=kong-server.test"''')
    assert code == 201, cert
    assert cert["snis"] == ["kong-server.test"]
    code, sni = run(f'''curl -X POST http://localhost:8001/snis \\
--data "name=other.kong-server.test" --data "certificate.id={cert['id']}"''')
    assert code == 201 and sni["certificate"] == {"id": cert["id"]}
    code, _ = run('''curl -X POST http://localhost:8001/services \\
--data "name=site" --data "url=http://127.0.0.1:8080"''')
    assert code == 201
    code, route = run('''curl -X POST http://localhost:8001/services/site/routes \\
--data "protocols[]=https" --data "snis[]=kong-server.test" --data "hosts[]=kong-server.test"''')
    assert code == 201, route
    assert route["snis"] == ["kong-server.test"] and route["protocols"] == ["https"]
    code, listed = run(f"curl http://localhost:8001/certificates/{cert['id']}")
    assert listed["snis"] == ["kong-server.test", "other.kong-server.test"]
    # a certificate presented by Kong to the upstream (#3): client_certificate per service
    code, client = run('''curl -X POST http://localhost:8001/certificates \\
--data-urlencode "cert@client.crt" --data-urlencode "key@client.key"''')
    assert code == 201, client
    code, svc = run(f'''curl -X PATCH http://localhost:8001/services/site \\
--data "url=https://upstream.internal" --data "client_certificate.id={client['id']}"''')
    assert code == 200, svc
    assert svc["client_certificate"] == {"id": client["id"]} and svc["protocol"] == "https"


def test_seed_004_upstream_tls_knobs(run: Any) -> None:
    code, ca = run('''curl -X POST http://localhost:8001/ca_certificates \\
--data-urlencode "cert@rootCA.pem"''')
    assert code == 201, ca
    code, svc = run('''curl -X POST http://localhost:8001/services \\
--data "name=backend" --data "url=https://backend.internal"''')
    assert code == 201 and svc["port"] == 443
    code, svc = run(f'''curl -X PATCH http://localhost:8001/services/backend \\
--data "tls_verify=true" --data "tls_verify_depth=2" --data "ca_certificates[]={ca['id']}"''')
    assert code == 200, svc
    assert (svc["tls_verify"], svc["tls_verify_depth"], svc["ca_certificates"]) == (
        True, 2, [ca["id"]])
    code, err = run('''curl -X PATCH http://localhost:8001/services/backend \\
--data "tls_verify_depth=65"''')
    assert code == 400
    assert err["fields"] == {"tls_verify_depth": "value should be between 0 and 64"}
    # tls_verify is only for TLS services (Kong's conditional check)
    code, err = run('''curl -X POST http://localhost:8001/services \\
--data "name=plain" --data "url=http://backend.internal" --data "tls_verify=true"''')
    assert code == 400
    assert err["fields"] == {
        "@entity": ["failed conditional validation given value of field 'protocol'"],
        "tls_verify": "value must be null"}
