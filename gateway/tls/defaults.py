"""The default server certificate: configured, or generated once and kept (like Kong).

Order: ``ssl_cert``/``ssl_cert_key`` pairs, else KrakenD's ``tls.public_key``/``private_key``,
else a self-signed ``localhost`` pair of each key type (RSA 2048 and ECDSA P-256) generated
on first start into ``<prefix>/ssl/`` and reused on every start after that.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.settings.model import Settings, read_pem

log = logging.getLogger("ramparts.tls")

Pair = tuple[str, str]

SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
    x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ramparts"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IT Department"),
    x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
])


def configured_pairs(settings: Settings) -> list[Pair]:
    if settings.ssl_cert:
        return [(read_pem(c), read_pem(k))
                for c, k in zip(settings.ssl_cert, settings.ssl_cert_key, strict=True)]
    tls = settings.tls
    if tls is not None and tls.public_key and tls.private_key:
        return [(read_pem(tls.public_key), read_pem(tls.private_key))]
    return []


def default_pairs(settings: Settings) -> list[Pair]:
    return configured_pairs(settings) or generated_pairs(Path(settings.prefix) / "ssl")


def generated_pairs(directory: Path) -> list[Pair]:
    pairs = []
    for name, make_key in (("ramparts-default", _rsa), ("ramparts-default-ecdsa", _ecdsa)):
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        if not (cert_path.exists() and key_path.exists()):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds private keys
            cert_pem, key_pem = _self_signed(make_key())
            _write_private(key_path, key_pem)
            cert_path.write_text(cert_pem)
            log.info("generated the default certificate %s", cert_path)
        pairs.append((cert_path.read_text(), key_path.read_text()))
    return pairs


def _rsa() -> CertificateIssuerPrivateKeyTypes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ecdsa() -> CertificateIssuerPrivateKeyTypes:
    return ec.generate_private_key(ec.SECP256R1())


def _self_signed(key: CertificateIssuerPrivateKeyTypes) -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(SUBJECT).issuer_name(SUBJECT).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=20 * 365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
