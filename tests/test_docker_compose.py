"""``docker-compose.yml`` is valid (``docker-compose config -q``, no Docker engine needed) and
describes what the README promises: PostgreSQL, migrations once, two nodes with health checks on
the README's ports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("Debian's docker-compose package is required (make deps installs it)")
    return subprocess.run([binary, "-f", str(COMPOSE), *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_config_is_valid() -> None:
    out = compose("config", "-q")
    assert out.returncode == 0, out.stderr


def test_two_nodes_with_migrations_and_health_checks() -> None:
    out = compose("config")
    assert out.returncode == 0, out.stderr
    services: dict[str, Any] = yaml.safe_load(out.stdout)["services"]
    assert "ramparts migrations up" in services["migrations"]["command"]
    assert services["migrations"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
    published = {}
    for name in ("ramparts-1", "ramparts-2"):
        svc = services[name]
        assert svc["depends_on"]["migrations"]["condition"] == \
            "service_completed_successfully"
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/__health" in " ".join(svc["healthcheck"]["test"])
        assert svc["environment"]["RAMPARTS_DATABASE"] == \
            services["migrations"]["environment"]["RAMPARTS_DATABASE"]
        published[name] = sorted(p.split(":")[1].split("/")[0] for p in svc["ports"])
    # the README's ports: Admin API 8001 / 9001, proxy 8000+8443 / 9000+9443
    assert published == {"ramparts-1": ["8000", "8001", "8443"],
                         "ramparts-2": ["9000", "9001", "9443"]}
