"""bench/nginxconf.py: the reference configurations pass `nginx -t` (where nginx is
installed: `make bench` installs it), the 1,000-location and the client-verifying ones too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench.nginxconf import locations, origin_conf, pass_all, proxy_conf, server, verify_client
from tests.pki import Pki

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")


def nginx_t(run: Path, conf: str) -> subprocess.CompletedProcess[str]:
    path = run / "t.conf"
    path.write_text(conf)
    return subprocess.run(["nginx", "-t", "-p", f"{run}/", "-e", str(run / "err.log"), "-c",
                           str(path)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def certs(tmp_path: Path, pki: Pki) -> Path:
    for name in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(pki.dir / "s003" / name, tmp_path / name)
    return tmp_path


def test_origin_and_proxies_are_valid(certs: Path) -> None:
    done = nginx_t(certs, origin_conf(certs, 18080, 18081, certs))
    assert done.returncode == 0, done.stderr
    conf = proxy_conf(certs, "p", 18080, [server(18443, certs, locations(range(1000))),
                                         server(18444, certs, verify_client(certs / "ca.crt")),
                                         server(18445, certs, pass_all())], workers=2)
    done = nginx_t(certs, conf)
    assert done.returncode == 0, done.stderr


def test_a_broken_server_block_is_refused(certs: Path) -> None:  # the check can fail
    assert nginx_t(certs, proxy_conf(certs, "p", 1, [server(18443, certs, "nope;")])
                   ).returncode != 0
