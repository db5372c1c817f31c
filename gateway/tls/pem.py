"""PEM parsing and certificate facts (cryptography only; no ``ssl`` here).

Used by the entity validators (Kong's ``certificate``/``key`` typedefs and the certificate and
CA checks) and later by the TLS store. Every function is pure and raises ``PemError`` with a
message fit for Kong's ``invalid certificate: ...`` texts.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_END = re.compile(r"(?=-----END ([A-Z0-9 ]+)-----)")
_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"


class PemError(ValueError):
    """The text is not the PEM that was expected; the message says why."""


def repair_form_pem(text: str) -> str:
    """Undo form-decoding damage to PEM sent as ``curl --data "cert=$(cat c.pem)"``.

    Form decoding turns every ``+`` of the base64 body into a space. Base64 body lines never
    contain spaces, so a space there can only be a decoded ``+``. Header lines
    (``Proc-Type: 4,ENCRYPTED``) keep theirs.

    Linear in the input: the END markers are indexed once, so a body of a million BEGIN
    markers without an END (which a backtracking ``BEGIN (.*?) END`` search scans to the end
    from each of them) costs one pass.
    """
    if "-----BEGIN " not in text:
        return text
    ends: dict[str, list[int]] = {}
    for match in _END.finditer(text):  # positions ascend, overlapping markers included
        ends.setdefault(match.group(1), []).append(match.start())
    out: list[str] = []
    done = pos = 0
    while (begin := _BEGIN.search(text, pos)) is not None:
        label = begin.group(1)
        positions = ends.get(label, [])
        i = bisect.bisect_left(positions, begin.end())
        if i == len(positions):  # no END for this block: look for the next BEGIN
            pos = begin.start() + 1
            continue
        end = positions[i]
        out += [text[done:begin.end()], _repair_body(text[begin.end():end])]
        done = pos = end + len(f"-----END {label}-----")
        out.append(text[end:done])
    out.append(text[done:])
    return "".join(out)


def _repair_body(body: str) -> str:
    lines = body.split("\n")
    # a '+' at the very end of a line became a trailing space: keep it, it was data
    return "\n".join(ln if (":" in ln or not ln.strip(" \r")) else
                     ln.strip("\r").replace(" ", "+") for ln in lines)


def load_certificates(pem: str) -> list[x509.Certificate]:
    """Every certificate of a PEM chain, leaf first. Raises ``PemError``."""
    if _CERT_BEGIN not in pem:
        raise PemError("no certificate found (expected a PEM block "
                       "'-----BEGIN CERTIFICATE-----')")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise PemError(f"could not parse PEM certificate: {_reason(exc)}") from exc
    if not certs:
        raise PemError("no certificate found")
    return certs


def load_private_key(pem: str) -> PrivateKeyTypes:
    if "-----BEGIN" not in pem or "PRIVATE KEY-----" not in pem:
        raise PemError("no private key found (expected a PEM block "
                       "'-----BEGIN PRIVATE KEY-----')")
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError as exc:  # encrypted without a password
        raise PemError("the private key is encrypted; decrypt it first "
                       "(openssl pkey -in key.pem -out plain.pem)") from exc
    except (ValueError, Exception) as exc:
        raise PemError(f"could not parse PEM private key: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - every public key type has it
    der: bytes = public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    return spki(cert.public_key()) == spki(key.public_key())


def key_type(key: object) -> str:
    """``rsa``, ``ecdsa``, ``ed25519``, ... (the public or private key of a pair)."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ecdsa"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "ed448"
    if isinstance(key, (dsa.DSAPrivateKey, dsa.DSAPublicKey)):
        return "dsa"
    return "unknown"


def count_certificates(pem: str) -> int:
    return pem.count(_CERT_BEGIN)


def is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bool(bc.ca)


def is_expired(cert: x509.Certificate, now: dt.datetime | None = None) -> bool:
    now = now or dt.datetime.now(dt.UTC)
    return cert.not_valid_after_utc < now


def sha256_digest(cert: x509.Certificate) -> str:
    """Kong's ``cert_digest``: lowercase hex SHA-256 of the DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True, slots=True)
class CertSummary:
    """What operators want to see about a certificate (expiry visibility)."""

    subject: str
    issuer: str
    not_before: int
    not_after: int
    serial: str
    key_type: str
    sans: tuple[str, ...]


def summarize(cert: x509.Certificate) -> CertSummary:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(str(v.value) for v in san)
    except x509.ExtensionNotFound:
        sans = ()
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=int(cert.not_valid_before_utc.timestamp()),
        not_after=int(cert.not_valid_after_utc.timestamp()),
        serial=format(cert.serial_number, "x"),
        key_type=key_type(cert.public_key()),
        sans=sans,
    )
