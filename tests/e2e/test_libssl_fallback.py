"""Without the libssl bridge the node says what it cannot honour, and refuses to start when
the settings explicitly ask for it (RAMPARTS_LIBSSL_BRIDGE=off stands in for a failed
self-check)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.proc import RAMPARTS, free_port, launch, ready

pytestmark = pytest.mark.e2e
OFF = {"RAMPARTS_LIBSSL_BRIDGE": "off"}


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"database": f"sqlite:///{tmp_path}/r.db", "prefix": str(tmp_path / "prefix"),
            "proxy_listen": f"127.0.0.1:{free_port()} ssl", **extra}


def test_defaults_start_and_say_what_is_degraded(tmp_path: Path) -> None:
    node = launch(tmp_path, settings(tmp_path), env=OFF)
    try:
        ready(node)
        log = node.output()
        assert "libssl bridge unavailable (disabled by RAMPARTS_LIBSSL_BRIDGE=off)" in log
        assert "tls.cipher_suites (TLS 1.3 cipher suites)" in log
        assert "tls.curve_preferences (the key exchange group list)" in log
    finally:
        node.stop()


@pytest.mark.parametrize(("tls", "named"), [
    ({"curve_preferences": [23]}, "tls.curve_preferences"),
    ({"cipher_suites": [4866]}, "tls.cipher_suites"),
    ({"enable_mtls": True, "ca_certs": []}, "tls.enable_mtls"),
])
def test_explicit_settings_refuse_to_start(tmp_path: Path, tls: dict[str, Any],
                                           named: str) -> None:
    conf = tmp_path / "r.json"
    conf.write_text(json.dumps({**settings(tmp_path), "tls": tls,
                                "admin_listen": f"127.0.0.1:{free_port()}"}))
    out = subprocess.run([RAMPARTS, "start", "-c", str(conf)], capture_output=True, text=True,
                         timeout=60, env={**_env(), **OFF})
    assert out.returncode == 1, out.stderr
    assert f"cannot honour {named}" in out.stderr


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RAMPARTS_")}
