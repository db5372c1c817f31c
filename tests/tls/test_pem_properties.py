"""Property tests for ``gateway/tls/pem.py``: whatever text arrives, PEM parsing ends in a
value or a ``PemError`` (what the certificates schema turns into Kong's ``invalid
certificate: ...`` / ``invalid key: ...``), in time linear in the input; valid certificates
and keys always parse back to themselves.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import SchemaViolation
from gateway.schema.entities.certificates import CA_CERTIFICATES, CERTIFICATES
from gateway.schema.validate import validate
from gateway.tls import pem

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# keys are expensive to make: a fixed pool, one per type the gateway serves
KEYS: tuple[CertificateIssuerPrivateKeyTypes, ...] = (
    ec.generate_private_key(ec.SECP256R1()),
    ec.generate_private_key(ec.SECP384R1()),
    ed25519.Ed25519PrivateKey.generate(),
    rsa.generate_private_key(public_exponent=65537, key_size=2048),
)

BLOCK_TYPES = ("CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
               "ENCRYPTED PRIVATE KEY", "PUBLIC KEY", "X509 CRL", "CERTIFICATE REQUEST",
               "TRUSTED CERTIFICATE", "PKCS7", "")


def make_cert(key: CertificateIssuerPrivateKeyTypes, cn: str, serial: int, days: int,
              ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, algorithm))


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: CertificateIssuerPrivateKeyTypes, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.NoEncryption()).decode()


names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1,
                max_size=40)
certs = st.builds(make_cert, st.sampled_from(KEYS), names, st.integers(1, 2**159 - 1),
                  st.integers(1, 20000), st.booleans())
VALID = cert_pem(make_cert(KEYS[0], "valid.test", 1, 3650, False))
VALID_KEY = key_pem(KEYS[0], serialization.PrivateFormat.PKCS8)


def only_pem_errors(parse: Callable[[str], Any], text: str) -> None:
    """``parse`` returns or raises ``PemError``; any other exception fails the property."""
    try:
        parse(text)
    except pem.PemError as exc:
        assert str(exc), "a PemError must say why"


PARSERS: dict[str, Callable[[str], Any]] = {
    "load_certificates": pem.load_certificates,
    "load_private_key": pem.load_private_key,
}


# ------------------------------------------------------------------ valid input round trips


@PROPERTY
@given(cert=certs)
def test_a_valid_certificate_parses_back_to_itself(cert: x509.Certificate) -> None:
    (parsed,) = pem.load_certificates(cert_pem(cert))
    assert parsed == cert
    assert pem.sha256_digest(parsed) == pem.sha256_digest(cert)
    assert pem.count_certificates(cert_pem(cert)) == 1


@PROPERTY
@given(chain=st.lists(certs, min_size=1, max_size=4), sep=st.sampled_from(["", "\n", "\r\n"]))
def test_a_chain_parses_leaf_first_in_order(chain: list[x509.Certificate], sep: str) -> None:
    text = sep.join(cert_pem(c) for c in chain)
    assert pem.load_certificates(text) == chain


@PROPERTY
@given(key=st.sampled_from(KEYS), fmt=st.sampled_from([serialization.PrivateFormat.PKCS8,
                                                      serialization.PrivateFormat.TraditionalOpenSSL]))
def test_a_valid_key_parses_and_matches_its_certificate(
        key: CertificateIssuerPrivateKeyTypes, fmt: serialization.PrivateFormat) -> None:
    if isinstance(key, ed25519.Ed25519PrivateKey) and \
            fmt is serialization.PrivateFormat.TraditionalOpenSSL:
        fmt = serialization.PrivateFormat.PKCS8  # Ed25519 has no traditional format
    parsed = pem.load_private_key(key_pem(key, fmt))
    assert pem.key_matches(make_cert(key, "k.test", 7, 30, False), parsed)
    assert pem.key_type(parsed) == pem.key_type(key)


@PROPERTY
@given(cert=certs)
def test_form_decoding_damage_is_repaired(cert: x509.Certificate) -> None:
    """``--data cert=$(cat c.pem)`` turns every '+' into a space; the repair undoes it."""
    text = cert_pem(cert)
    assert pem.repair_form_pem(text.replace("+", " ")) == text
    assert pem.repair_form_pem(text) == text


# repair_form_pem means what the regex it replaced meant: tests/tls/test_pem_repair.py


# ------------------------------------------------------------------ hostile input


@st.composite
def garbled(draw: st.DrawFn) -> str:
    """A valid certificate or key, then truncated, cut, spliced, relabelled or padded."""
    text = draw(st.sampled_from([VALID, VALID_KEY, VALID + VALID_KEY]))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, len(text)))
        op = draw(st.sampled_from(["truncate", "cut", "insert", "relabel", "dup"]))
        if op == "truncate":
            text = text[:i]
        elif op == "cut":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.text(max_size=20)) + text[i:]
        elif op == "relabel":
            label = draw(st.sampled_from(BLOCK_TYPES))
            text = text.replace("CERTIFICATE", label, 1).replace("PRIVATE KEY", label)
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@PROPERTY
@given(text=st.text())
@pytest.mark.parametrize("parser", list(PARSERS))
def test_arbitrary_text_gives_only_pem_errors(parser: str, text: str) -> None:
    only_pem_errors(PARSERS[parser], text)
    only_pem_errors(PARSERS[parser], f"-----BEGIN {BLOCK_TYPES[0]}-----\n{text}\n"
                                     f"-----END {BLOCK_TYPES[0]}-----\n")


@PROPERTY
@given(text=garbled())
@pytest.mark.parametrize("parser", list(PARSERS))
def test_garbled_pem_gives_only_pem_errors(parser: str, text: str) -> None:
    only_pem_errors(PARSERS[parser], text)
    assert isinstance(pem.repair_form_pem(text), str)


@PROPERTY
@given(label=st.sampled_from(BLOCK_TYPES), body=st.binary(max_size=300))
def test_wrong_block_types_are_refused_with_pem_errors(label: str, body: bytes) -> None:
    import base64

    text = f"-----BEGIN {label}-----\n{base64.encodebytes(body).decode()}-----END {label}-----\n"
    for parser in PARSERS.values():
        only_pem_errors(parser, text)
    with pytest.raises(pem.PemError):
        pem.load_certificates(VALID_KEY)
    with pytest.raises(pem.PemError):
        pem.load_private_key(VALID)


@PROPERTY
@given(cert=st.one_of(garbled(), st.text(max_size=200)),
       key=st.one_of(garbled(), st.text(max_size=200)))
def test_the_certificate_schemas_answer_only_schema_violations(cert: str, key: str) -> None:
    """Through the entity schemas (what ``POST /certificates`` runs): 400s, never a crash."""
    for record, data in ((CERTIFICATES.record, {"cert": cert, "key": key}),
                         (CERTIFICATES.record, {"cert": VALID, "key": key,
                                                "cert_alt": cert, "key_alt": VALID_KEY}),
                         (CA_CERTIFICATES.record, {"cert": cert})):
        try:
            validate(record, data)
        except SchemaViolation as exc:
            assert exc.fields


# ------------------------------------------------------------------ bounded time

HUGE = 2 * 1024 * 1024  # five times a large Admin API body; linear parsing takes well under 1 s
BOUND = 10.0  # seconds: loose enough for a loaded 2-core machine, far below a quadratic parse


def _huge(unit: str) -> str:
    return unit * (HUGE // len(unit))


HOSTILE = {
    "begin markers only": _huge("-----BEGIN CERTIFICATE-----\n"),
    "begin markers of many types": "".join(f"-----BEGIN T{i}-----" for i in range(90000)),
    "one endless block": "-----BEGIN CERTIFICATE-----\n" + _huge("QUJD" * 16 + "\n"),
    "long label": "-----BEGIN " + _huge("A") + "-----",
    "dashes": _huge("-"),
    "many end markers": _huge("-----END CERTIFICATE-----\n"),
    "valid then garbage": VALID + _huge("x"),
    "many valid certificates": VALID * (HUGE // len(VALID)),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_huge_input_is_handled_in_bounded_time(case: str) -> None:
    text = HOSTILE[case]
    started = time.monotonic()
    for parser in PARSERS.values():
        only_pem_errors(parser, text)
    pem.repair_form_pem(text)
    pem.count_certificates(text)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND, f"{case}: {elapsed:.1f} s for {len(text)} characters"
