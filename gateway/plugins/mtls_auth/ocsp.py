"""OCSP for mtls-auth (pure): the request for a leaf, and the checks on an answer (status,
signature by the issuer or its delegated responder, serial, freshness)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

SKEW = dt.timedelta(minutes=5)


def responders(leaf: x509.Certificate) -> list[str]:
    """The OCSP URLs of the leaf's Authority Information Access."""
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [str(d.access_location.value) for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def request_der(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    req = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    return req.public_bytes(serialization.Encoding.DER)


def _signed_by(signer: x509.Certificate, signature: bytes, data: bytes,
               algorithm: Any) -> bool:
    key = signer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _signer(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    """The issuer itself, or a responder certificate it issued for OCSP signing."""
    if not resp.certificates:
        return issuer
    for cert in resp.certificates:
        if cert == issuer:
            return issuer
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku and cert.issuer == issuer.subject and \
                _signed_by(issuer, cert.signature, cert.tbs_certificate_bytes,
                           cert.signature_hash_algorithm):
            return cert
    return None


def verdict(der: bytes, leaf: x509.Certificate, issuer: x509.Certificate,
            now: dt.datetime | None = None) -> tuple[str, dt.datetime | None]:
    """("good" | "revoked", nextUpdate) or ValueError saying why the answer is unusable."""
    now = now or dt.datetime.now(dt.UTC)
    resp = ocsp.load_der_ocsp_response(der)
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError(f"OCSP responder said {resp.response_status.name}")
    signer = _signer(resp, issuer)
    if signer is None or not _signed_by(signer, resp.signature, resp.tbs_response_bytes,
                                        resp.signature_hash_algorithm):
        raise ValueError("OCSP response signature does not verify")
    if resp.serial_number != leaf.serial_number:
        raise ValueError("OCSP response is about another certificate")
    nxt = resp.next_update_utc
    if resp.this_update_utc > now + SKEW or (nxt is not None and nxt < now - SKEW):
        raise ValueError("OCSP response is not fresh")
    status = resp.certificate_status
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        raise ValueError("OCSP responder does not know the certificate")
    return ("revoked" if status == ocsp.OCSPCertStatus.REVOKED else "good"), nxt
