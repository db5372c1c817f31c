"""san_dirname_matcher: which attributes of a SAN DirectoryName join the names mtls-auth
looks consumers up by (Kong 3.14: OID, long or short name, case-sensitive; empty = all)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.plugins.directory import build_directory
from gateway.plugins.mtls_auth.dirname import lookup_names
from gateway.plugins.mtls_auth.handler import MtlsAuthHandler
from gateway.plugins.mtls_auth.verify import san_parts
from gateway.plugins.pdk import ClientView, Exit, Kong, RequestView

CA_ID = "c0000000-0000-4000-8000-0000000000d1"


def _cert(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
          signer: ec.EllipticCurvePrivateKey, *extensions: x509.ExtensionType
          ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30)))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=isinstance(ext, x509.BasicConstraints))
    return builder.sign(signer, hashes.SHA256())


def _cn(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])


CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA = _cert(_cn("Dir CA"), _cn("Dir CA"), CA_KEY, CA_KEY,
           x509.BasicConstraints(ca=True, path_length=None))
DIRNAME = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "dir-client"),
                     x509.NameAttribute(NameOID.USER_ID, "u-42")])
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF = _cert(_cn("leaf-cn"), CA.subject, LEAF_KEY, CA_KEY, x509.SubjectAlternativeName(
    [x509.DNSName("svc.test"), x509.DirectoryName(DIRNAME)]))


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_directory_names_take_their_place_among_the_san_values() -> None:
    parts = san_parts(LEAF)
    assert lookup_names(parts, "leaf-cn", frozenset()) == (
        "svc.test", "Acme", "dir-client", "u-42", "leaf-cn")
    assert lookup_names(parts, "leaf-cn", frozenset({"CN", "UID"})) == (
        "svc.test", "dir-client", "u-42", "leaf-cn")


def access(config: dict[str, Any], subjects: list[str]) -> Kong:
    """One request with LEAF; ``subjects[i]`` is a credential of consumer ``c<i>``."""
    db = build_directory({
        "consumers": [{"id": f"c{i}", "username": f"user-{i}"} for i in range(len(subjects))],
        "mtls_auth_credentials": [{"id": f"m{i}", "subject_name": s, "consumer": {"id": f"c{i}"},
                                   "ca_certificate": None} for i, s in enumerate(subjects)],
        "ca_certificates": [{"id": CA_ID, "cert": pem(CA)}]})
    kong = Kong(request=RequestView("GET", "https", "h", 443, "/", b"", []),
                client=ClientView(ip="127.0.0.1", tls={"client_cert_chain": [pem(LEAF)],
                                                       "verdicts": {}}),
                protocol="https", db=db)
    MtlsAuthHandler({"ca_certificates": [CA_ID], "consumer_by": [],
                     "revocation_check_mode": "SKIP", **config}).access(kong)
    return kong


@pytest.mark.parametrize(("matcher", "subject", "found"), [
    ([], "dir-client", True),                   # the default: every attribute
    ([], "u-42", True),
    (["CN"], "dir-client", True),               # short name
    (["commonName"], "dir-client", True),       # long name
    (["2.5.4.3"], "dir-client", True),          # OID
    (["CN"], "Acme", False),                    # O is not selected
    (["organizationName"], "Acme", True),
    (["userId"], "u-42", True),
    (["cn"], "dir-client", False),              # case-sensitive
])
def test_the_matcher_selects_attributes(matcher: list[str], subject: str, found: bool) -> None:
    try:
        kong = access({"san_dirname_matcher": matcher}, [subject])
    except Exit as stop:
        assert not found and stop.status == 401
        return
    assert found and kong.client.consumer is not None and kong.client.consumer.id == "c0"


@pytest.mark.parametrize(("subjects", "winner"), [
    (["dir-client", "svc.test"], "c1"),         # the DNS SAN comes before the DirectoryName
    (["leaf-cn", "dir-client"], "c1"),          # the DirectoryName before the CN
])
def test_lookup_order(subjects: list[str], winner: str) -> None:
    kong = access({}, subjects)
    assert kong.client.consumer is not None and kong.client.consumer.id == winner


def test_skip_consumer_lookup_headers_leave_directory_names_out() -> None:
    kong = access({"skip_consumer_lookup": True}, [])
    assert kong.service_request.set_headers[b"x-client-cert-san"] == b"svc.test,leaf-cn"
