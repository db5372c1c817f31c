"""Certificate revocation lists: parsing, the upload checks and the revocation lookup (pure).

A CRL is accepted for a CA certificate only when it parses (PEM or DER), is signed by that
CA and is not past its ``nextUpdate``; a bad upload is a 400 that changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass(frozen=True, slots=True)
class Crl:
    crl: x509.CertificateRevocationList

    @property
    def next_update(self) -> dt.datetime | None:
        return self.crl.next_update_utc

    def fresh(self, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.UTC)
        nxt = self.next_update
        return self.crl.last_update_utc <= now + dt.timedelta(minutes=5) and (
            nxt is None or now <= nxt)

    def revoked(self, serial: int) -> bool:
        return self.crl.get_revoked_certificate_by_serial_number(serial) is not None


def distribution_points(leaf: x509.Certificate) -> list[str]:
    """The URLs of the leaf's CRL Distribution Points."""
    try:
        cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [str(name.value) for point in cdp for name in point.full_name or ()
            if isinstance(name, x509.UniformResourceIdentifier)]


def parse(data: bytes | str) -> Crl:
    """PEM or DER; ValueError when it is not a CRL."""
    raw = data.encode() if isinstance(data, str) else data
    if b"-----BEGIN X509 CRL-----" in raw:
        return Crl(x509.load_pem_x509_crl(raw))
    return Crl(x509.load_der_x509_crl(raw))


def signed_by(crl: Crl, issuer: x509.Certificate) -> bool:
    key: Any = issuer.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    return crl.crl.issuer == issuer.subject and crl.crl.is_signature_valid(key)


def upload_problem(text: Any, ca_pem: str) -> str | None:
    """Why ``text`` cannot be this CA's CRL, or None."""
    if not isinstance(text, str) or not text.strip():
        return "required field missing"
    try:
        crl = parse(text)
    except ValueError:
        return "invalid CRL: expected a PEM 'X509 CRL'"
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    if not signed_by(crl, ca):
        return "CRL is not signed by this CA certificate"
    nxt = crl.next_update
    if nxt is not None and nxt < dt.datetime.now(dt.UTC):
        return f"CRL expired: its nextUpdate ({nxt:%Y-%m-%dT%H:%M:%SZ}) is in the past"
    return None
