"""OCSP answers: only a fresh answer about this certificate, signed by its issuer (or a
responder the issuer delegated), counts."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.plugins.mtls_auth import ocsp
from tests.plugins.mtls_auth.test_verify import OTHER, ROOT, issue

LEAF, _ = issue("leaf", ROOT)
NOW = dt.datetime.now(dt.UTC)


def answer(status: x509_ocsp.OCSPCertStatus = x509_ocsp.OCSPCertStatus.GOOD,
           signer: tuple[x509.Certificate, object] = ROOT, about: x509.Certificate = LEAF,
           delegate: x509.Certificate | None = None, next_days: float = 1) -> bytes:
    builder = x509_ocsp.OCSPResponseBuilder().add_response(
        cert=about, issuer=ROOT[0], algorithm=hashes.SHA1(), cert_status=status,
        this_update=NOW - dt.timedelta(hours=1),
        next_update=NOW + dt.timedelta(days=next_days),
        revocation_time=NOW - dt.timedelta(hours=2)
        if status == x509_ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None).responder_id(x509_ocsp.OCSPResponderEncoding.HASH, signer[0])
    if delegate is not None:
        builder = builder.certificates([delegate])
    resp = builder.sign(signer[1], hashes.SHA256())  # type: ignore[arg-type]
    return resp.public_bytes(serialization.Encoding.DER)


DELEGATE = issue("responder", ROOT, eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
NOT_DELEGATED = issue("responder", ROOT, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])


@pytest.mark.parametrize(("der", "expected"), [
    (answer(), "good"),
    (answer(x509_ocsp.OCSPCertStatus.REVOKED), "revoked"),
    (answer(x509_ocsp.OCSPCertStatus.UNKNOWN), "does not know"),
    (answer(signer=OTHER), "signature"),                        # signed by another CA
    (answer(signer=DELEGATE, delegate=DELEGATE[0]), "good"),    # a delegated responder
    (answer(signer=NOT_DELEGATED, delegate=NOT_DELEGATED[0]), "signature"),
    (answer(about=issue("other leaf", ROOT)[0]), "another certificate"),
    (answer(next_days=-1), "not fresh"),
])
def test_verdicts(der: bytes, expected: str) -> None:
    try:
        status, _ = ocsp.verdict(der, LEAF, ROOT[0])
    except ValueError as exc:
        assert expected in str(exc)
        return
    assert status == expected


def test_request_names_the_leaf() -> None:
    req = x509_ocsp.load_der_ocsp_request(ocsp.request_der(LEAF, ROOT[0]))
    assert req.serial_number == LEAF.serial_number
    assert ocsp.responders(LEAF) == []
