"""``ramparts config ...`` as a user runs it (a real process, an embedded database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.pki import Pki


def ramparts(tmp: Path, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "RAMPARTS_DATABASE": f"sqlite:///{tmp}/r.db", **(env or {})}
    return subprocess.run([sys.executable, "-m", "admin.cli", "config", *args], cwd=tmp,
                          env=environ, capture_output=True, text=True, timeout=60, check=False)


def test_init_parse_import_export_diff(tmp_path: Path) -> None:
    out = ramparts(tmp_path, "init")
    assert out.returncode == 0 and "Successfully written kong.yml" in out.stdout
    assert ramparts(tmp_path, "init").returncode == 1  # never overwrites
    assert ramparts(tmp_path, "parse", "kong.yml").stdout == "parse successful\n"
    out = ramparts(tmp_path, "diff", "kong.yml")
    assert out.returncode == 2 and "+ create services" in out.stdout
    out = ramparts(tmp_path, "db_import", "kong.yml")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "parse successful, beginning import\nimport successful\n"
    assert ramparts(tmp_path, "diff", "kong.yml").returncode == 0
    assert ramparts(tmp_path, "db_export", "out.yml").returncode == 0
    out = ramparts(tmp_path, "db_export", "out.yml")
    assert out.returncode == 1 and "--force" in out.stderr
    assert ramparts(tmp_path, "db_export", "out.yml", "--force").returncode == 0
    exported = yaml.safe_load((tmp_path / "out.yml").read_text())
    assert [s["name"] for s in exported["services"]] == ["example-service"]
    out = ramparts(tmp_path, "diff", "out.yml")
    assert (out.returncode, out.stdout) == (0, "0 to create, 0 to change, 0 to delete\n")


def test_invalid_file_is_reported_and_imports_nothing(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "bad.yml").write_text(yaml.safe_dump({
        "_format_version": "3.0",
        "services": [{"name": "s", "host": "s.test"}],
        "certificates": [{"cert": pki.read("s003/server.crt"), "key": "{vault://env/nope}"}]}))
    out = ramparts(tmp_path, "db_import", "bad.yml")
    assert out.returncode == 1
    assert "declarative config is invalid" in out.stderr
    assert "environment variable NOPE is not set" in out.stderr
    out = ramparts(tmp_path, "db_export", "-")
    assert yaml.safe_load(out.stdout) == {"_format_version": "3.0", "_transform": False}


def test_dbless_settings(tmp_path: Path) -> None:
    env = {"RAMPARTS_DATABASE": "off"}
    assert ramparts(tmp_path, "init").returncode == 0
    assert ramparts(tmp_path, "parse", "kong.yml", env=env).returncode == 0
    out = ramparts(tmp_path, "db_import", "kong.yml", env=env)
    assert out.returncode == 1
    assert "'ramparts config db_import' only works with a database." in out.stderr
