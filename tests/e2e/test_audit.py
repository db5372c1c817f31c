"""The audit log on a real node, driven by curl as an operator would: uploaded and pasted keys
never reach it, the actor is the client's address, the background prune runs and the node
stops cleanly with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.proc import ramparts, shell
from tests.pki import Pki

pytestmark = pytest.mark.e2e


def test_curl_writes_are_audited_without_key_material(tmp_path: Path, pki: Pki) -> None:
    for name in ("server.crt", "server.key"):
        shutil.copy(pki.dir / "s003" / name, tmp_path / name)
    key = pki.read("s003/server.key")
    settings = {"database": f"sqlite:///{tmp_path}/audit.db", "log_level": "debug",
                "audit_log_retention": 7}
    with ramparts(tmp_path, settings) as node:
        admin = node.admin
        code, cert = shell(f'curl -X POST {admin}/certificates -F cert=@server.crt '
                           f'-F key=@server.key -F "snis[]=a.test"', tmp_path)
        assert code == 201, cert
        # pasted with --data: form decoding turns the key's '+' into spaces
        code, _ = shell(f'curl -X PATCH {admin}/certificates/{cert["id"]} '
                        f'--data "key=$(cat server.key)"', tmp_path)
        assert code == 200
        code, _ = shell(f"curl -X DELETE {admin}/certificates/a.test", tmp_path)
        assert code == 204
        code, log = shell(f"curl '{admin}/audit_log?entity=certificates'", tmp_path)
        assert code == 200, log
        assert node.stop() == 0
    rows = log["data"]
    assert [(r["operation"], r["status"]) for r in rows] == [
        ("delete", 204), ("update", 200), ("create", 201)]
    assert {r["actor"] for r in rows} == {"peer:127.0.0.1"}
    assert {r["entity_id"] for r in rows} == {cert["id"]}
    text = json.dumps(log)
    assert "PRIVATE KEY" not in text and key.splitlines()[1] not in text
    output = node.output()
    assert "audit-log-prune crashed" not in output and "audit log:" not in output
