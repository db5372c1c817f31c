"""10,000 certificates in a real node: imported with ``ramparts config db_import``, each of a
random sample of 100 SNIs gets its own certificate (CN and SAN), with an LRU of contexts far
smaller than the inventory, and a one-certificate change reaches the handshakes."""

from __future__ import annotations

import json
import random
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.e2e.gateway import node
from tests.e2e.proc import RAMPARTS, wait_for
from tests.pki import ec_pair, ec_pairs

pytestmark = pytest.mark.e2e

COUNT = 10_000
CLIENT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # we read what is served, trust nothing
CLIENT.check_hostname = False
CLIENT.verify_mode = ssl.CERT_NONE


def served(port: int, name: str) -> tuple[str, list[str]]:
    """The CN and the DNS SANs of the certificate a handshake with SNI ``name`` gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            CLIENT.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return str(cn[0].value) if cn else "", []
    return str(cn[0].value) if cn else "", sans.value.get_values_for_type(x509.DNSName)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database holding COUNT certificates, one SNI each (c{i}.test), put there the
    way an operator would: a kong.yml and ``ramparts config db_import``."""
    d = tmp_path_factory.mktemp("many")
    kong = d / "kong.yml"  # JSON is YAML
    kong.write_text(json.dumps({"_format_version": "3.0", "certificates": [
        {"cert": cert, "key": key, "snis": [{"name": f"c{i}.test"}]}
        for i, (cert, key) in enumerate(ec_pairs(COUNT))]}))
    conf = d / "ramparts.yaml"
    conf.write_text(json.dumps({"database": f"sqlite:///{d}/many.db"}))
    done = subprocess.run([RAMPARTS, "config", "db_import", str(kong), "-c", str(conf)],
                          capture_output=True, text=True, timeout=900, cwd=d)
    assert done.returncode == 0, done.stderr[-2000:]
    return d / "many.db"


def test_a_random_sample_of_snis_each_gets_its_own_certificate(imported: Path,
                                                               tmp_path: Path) -> None:
    sample = random.sample(range(COUNT), 100)
    # an LRU far smaller than the inventory: contexts are built on first use and evicted
    with node(tmp_path, f"sqlite:///{imported}", ssl_context_cache_size=32,
              ssl_context_eager=8) as gw:
        wait_for(lambda: served(gw.https_port, "c0.test")[0] == "c0.test", 300,
                 "the 10,000 certificates loaded")
        for _ in range(2):  # the second pass: every context was evicted in between
            for i in sample:
                name = f"c{i}.test"
                assert served(gw.https_port, name) == (name, [name])
        cn, _ = served(gw.https_port, "not-imported.test")  # no SNI of ours: the default
        assert not cn.endswith(".test")


def test_one_certificate_changed_among_10000_is_served(imported: Path, tmp_path: Path
                                                       ) -> None:
    db = tmp_path / "copy.db"  # the change stays out of the other tests' database
    shutil.copy(imported, db)
    with node(tmp_path, f"sqlite:///{db}") as gw:
        wait_for(lambda: served(gw.https_port, "c0.test")[0] == "c0.test", 300,
                 "the 10,000 certificates loaded")
        victim = random.randrange(1, COUNT)
        served(gw.https_port, f"c{victim}.test")  # its context is built and cached
        cert, key = ec_pair("renewed.test")
        sni = gw.call("GET", f"/snis/c{victim}.test").json()
        response = gw.call("PATCH", f"/certificates/{sni['certificate']['id']}",
                           json={"cert": cert, "key": key})
        assert response.status_code == 200, response.text
        wait_for(lambda: served(gw.https_port, f"c{victim}.test")[0] == "renewed.test", 60,
                 "the renewed certificate served")
        assert served(gw.https_port, f"c{victim - 1}.test") == (f"c{victim - 1}.test",
                                                                 [f"c{victim - 1}.test"])
