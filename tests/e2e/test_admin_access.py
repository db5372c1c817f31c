"""The Admin API's access rules on a real node: start-up refusal, tokens made with the CLI,
DNS rebinding, and client certificates on a TLS admin listener (curl, real handshakes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gateway.tls import libssl
from tests.e2e.proc import RAMPARTS, Running, curl, free_port, launch, wait_for
from tests.pki import UpstreamPki

pytestmark = pytest.mark.e2e


def listening(node: Running, *curl_args: str) -> None:
    """Ready once the Admin API answers anything (401 included): ``proc.ready`` expects
    ``/status`` to open without credentials."""
    wait_for(lambda: node.proc.poll() is not None or curl(*curl_args)[0] != 0, 60,
             "the Admin API")
    if node.proc.poll() is not None:
        raise AssertionError(f"ramparts exited early:\n{node.output()}")


def tokens(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RAMPARTS, "admin-tokens", *args, "-c",
                           str(workdir / "ramparts.yaml")], cwd=workdir, capture_output=True,
                          text=True, timeout=60)


def test_non_loopback_admin_listen_without_auth_refuses_to_start(tmp_path: Path) -> None:
    node = launch(tmp_path, {"admin_listen": f"0.0.0.0:{free_port()}"})
    try:
        assert node.proc.wait(timeout=60) == 1
    finally:
        node.stop()
    out = node.output()
    assert "is not a loopback address and admin_auth is off" in out
    assert "admin_auth: on" in out and "ramparts admin-tokens create NAME --role admin" in out
    check = subprocess.run([RAMPARTS, "check", "-c", str(tmp_path / "ramparts.yaml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and check.stdout.startswith("admin_listen: 0.0.0.0:")


def test_tokens_made_with_the_cli_on_a_running_node(tmp_path: Path) -> None:
    node = launch(tmp_path, {"admin_auth": "required"})
    try:
        listening(node, node.admin + "/status")
        code, body = curl("-i", node.admin + "/certificates")
        assert code == 401
        assert 'www-authenticate: bearer realm="ramparts-admin"' in body.lower()
        made = tokens(tmp_path, "create", "ops", "--role", "admin")
        assert made.returncode == 0, made.stderr
        ops = made.stdout.strip()
        assert "cannot be shown again" in made.stderr and ops not in made.stderr
        auditor = tokens(tmp_path, "create", "auditor", "--role", "read-only").stdout.strip()
        code, _ = curl("-H", f"Kong-Admin-Token: {ops}", node.admin + "/consumers",
                       "--data", "username=alice")
        assert code == 201
        code, body = curl("-H", f"Authorization: Bearer {auditor}", node.admin + "/consumers")
        assert code == 200 and '"username":"alice"' in body
        code, body = curl("-H", f"Authorization: Bearer {auditor}", "-X", "DELETE",
                          node.admin + "/consumers/alice")
        assert code == 403 and "read-only" in body
        listed = tokens(tmp_path, "list")
        assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == \
            [["auditor", "read-only"], ["ops", "admin"]]
        assert ops not in listed.stdout
        assert tokens(tmp_path, "revoke", "ops").returncode == 0
        code, _ = curl("-H", f"Kong-Admin-Token: {ops}", node.admin + "/consumers")
        assert code == 401  # at once, on the running node
        again = tokens(tmp_path, "create", "auditor", "--role", "admin")
        assert again.returncode == 1 and "already exists" in again.stderr and not again.stdout
        gone = tokens(tmp_path, "revoke", "ops")
        assert gone.returncode == 1 and "no admin token named 'ops'" in gone.stderr
        # DNS rebinding against the real listener: the request never reaches a handler
        code, body = curl("-H", f"Authorization: Bearer {auditor}", "-H",
                          "Host: attacker.example:8001", node.admin + "/consumers")
        assert code == 421 and "alice" not in body
    finally:
        assert node.stop() == 0


def client_cert_node(tmp_path: Path, upki: UpstreamPki, bridge: bool
                     ) -> tuple[Running, str]:
    port = free_port()
    node = launch(tmp_path, {
        "admin_listen": f"127.0.0.1:{port} ssl", "admin_auth": "required",
        "admin_ssl_cert": upki.path("depth0.crt"), "admin_ssl_cert_key": upki.path("depth0.key"),
        "admin_ssl_client_ca": upki.path("clientca.crt"),
        "admin_client_roles": {"CN=gateway-svc": "admin", "CN=gateway-svc2": "read-only"}},
        env=None if bridge else {"RAMPARTS_LIBSSL_BRIDGE": "off"})
    return node, f"https://127.0.0.1:{port}"


@pytest.mark.parametrize("bridge", [True, False], ids=["libssl-bridge", "stdlib"])
def test_client_certificate_maps_subject_to_role(tmp_path: Path, upki: UpstreamPki,
                                                 bridge: bool) -> None:
    if bridge and libssl.BRIDGE is None:
        pytest.skip(f"libssl bridge unavailable here: {libssl.UNAVAILABLE}")
    node, url = client_cert_node(tmp_path, upki, bridge)
    trust = ("--cacert", upki.path("root.crt"))

    def as_client(name: str) -> tuple[str, ...]:
        return (*trust, "--cert", upki.path(f"{name}.crt"), "--key", upki.path(f"{name}.key"))

    try:
        listening(node, *trust, url + "/status")
        code, body = curl(*trust, url + "/consumers")
        assert code == 401 and json.loads(body) == {"message": "Invalid RBAC credentials"}
        code, _ = curl(*as_client("gateway-svc"), url + "/consumers", "--data", "username=a")
        assert code == 201
        code, body = curl(*as_client("gateway-svc2"), url + "/consumers")
        assert code == 200 and '"username":"a"' in body
        code, body = curl(*as_client("gateway-svc2"), url + "/consumers", "--data",
                          "username=b")
        assert code == 403 and json.loads(body)["message"] == (
            "You do not have permissions to create this resource (cert:CN=gateway-svc2 has "
            "the read-only role)")
        code, body = curl(*as_client("gateway-default"), url + "/consumers")
        assert code == 403 and "'CN=gateway-default' has no role" in body
        # signed by a CA the Admin API does not trust
        code, body = curl(*as_client("stranger"), url + "/consumers")
        if bridge:
            assert code == 401 and "TLS certificate failed verification" in body
        else:
            assert code == 0  # stdlib ends the handshake
        code, body = curl(*trust, url + "/consumers")
        assert '"username":"b"' not in body
    finally:
        assert node.stop() == 0
