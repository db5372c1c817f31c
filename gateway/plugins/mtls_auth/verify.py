"""Client chain verification for mtls-auth, with OpenSSL's semantics (pyOpenSSL ``X509Store``).

OpenSSL's verifier, not cryptography's strict one, because users make X.509 v1 client
certificates with ``openssl x509 -req`` (seeds 001, 003) and OpenSSL accepts them. A trust
store is built once per CA set (and partial-chain flag) and shared; a verdict is computed
once per connection by the handler, never per request.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto

from gateway.plugins.mtls_auth import crl, ocsp
from gateway.plugins.mtls_auth.dirname import SanPart, directory_pairs

_STORES: OrderedDict[tuple[object, ...], Trust] = OrderedDict()
_LOCK = threading.Lock()
_MAX_STORES = 256


# Chains verified, by trust store and the SHA-256 of the chain as sent: each verdict with the
# moment its chain's first certificate expires. The only thing in OpenSSL's verdict that
# changes with time is validity (revocation is checked per request, apart), so until then a
# new connection showing the same chain needs no second verification. Per process, bounded
# (then it starts over), only chains that verified.
VERIFIED: dict[tuple[Trust, bytes], tuple[Verdict, float]] = {}
_MAX_VERIFIED = 4096


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one per cached set
class Trust:
    store: crypto.X509Store
    # SHA-256 of a CA certificate (DER) -> its ca_certificates id and the certificate, so a
    # verified chain's anchor and issuer are named without converting them back
    anchors: Mapping[bytes, tuple[str, x509.Certificate]]


@dataclass(frozen=True, slots=True)
class Verdict:
    """``reason`` is None when the chain verified; ``anchor`` is the id of the CA that
    anchored it; ``names`` are every SAN value then the subject CN (Kong's lookup order)."""

    reason: str | None
    anchor: str | None = None
    leaf: x509.Certificate | None = None
    names: tuple[str, ...] = ()
    cn: str | None = None
    dn: str = ""
    issuer: x509.Certificate | None = None   # the leaf's issuer in the verified chain
    issuer_ca: str | None = None             # its ca_certificates id, if it is one
    # revocation facts, computed with the verdict (once per connection): the cache key of
    # (leaf, issuer) and whether the leaf names an OCSP responder or a CRL location
    revocation_key: bytes = b""
    revocation_sources: bool = False
    # the SAN values with the DirectoryNames kept apart, for san_dirname_matcher; empty
    # when the leaf has no DirectoryName (then ``names`` is the lookup list)
    san_parts: tuple[SanPart, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is None


def trust_for(cas: Sequence[tuple[str, str]], partial: bool) -> Trust:
    """``cas``: (id, PEM) pairs. Built once per distinct set, then served from the cache."""
    key = (partial, *((i, hashlib.sha256(pem.encode()).digest()) for i, pem in cas))
    with _LOCK:
        found = _STORES.get(key)
        if found is not None:
            _STORES.move_to_end(key)
            return found
    store = crypto.X509Store()
    anchors: dict[bytes, tuple[str, x509.Certificate]] = {}
    for ca_id, pem in cas:
        for cert in x509.load_pem_x509_certificates(pem.encode()):
            der = cert.public_bytes(Encoding.DER)
            store.add_cert(crypto.load_certificate(crypto.FILETYPE_ASN1, der))
            anchors[_sha256(der)] = (ca_id, cert)
    if partial:
        store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    trust = Trust(store, anchors)
    with _LOCK:
        _STORES[key] = trust
        while len(_STORES) > _MAX_STORES:
            _STORES.popitem(last=False)
    return trust


def _sha256(der: bytes) -> bytes:
    # hashlib over the DER we already hold: the same value as cert.fingerprint(SHA256()),
    # which serializes the certificate again (10x slower)
    return hashlib.sha256(der).digest()


def _der(pem: str) -> bytes:
    try:
        return ssl.PEM_cert_to_DER_cert(pem)  # base64 only: the TLS layer's own PEM
    except ValueError:  # text around the PEM block, as openssl x509 -text writes it
        return x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)


def verify(trust: Trust, chain_pem: Sequence[str], now: float | None = None) -> Verdict:
    """``chain_pem``: the client's chain as sent, leaf first. A chain this trust store
    verified before is answered from ``VERIFIED`` until its first certificate expires
    (``now``: the wall clock OpenSSL checks validity against, for tests)."""
    try:
        ders = [_der(p) for p in chain_pem]
    except ValueError as exc:
        return Verdict(f"unparsable certificate: {exc}")
    key = (trust, hashlib.sha256(b"".join(ders)).digest())  # DER is self-delimiting
    moment = time.time() if now is None else now
    known = VERIFIED.get(key)
    if known is not None and moment < known[1]:
        return known[0]
    verdict, until = _verify(trust, ders)
    if verdict.ok:
        if len(VERIFIED) >= _MAX_VERIFIED:
            VERIFIED.clear()
        VERIFIED[key] = (verdict, until)
    return verdict


def _verify(trust: Trust, ders: Sequence[bytes]) -> tuple[Verdict, float]:
    """The verdict and when it expires. Every step counts: each certificate is parsed once
    by cryptography and once by pyOpenSSL (for OpenSSL's verifier), the chain is verified
    once (``get_verified_chain`` verifies; ``verify_certificate`` before it verified twice),
    and the anchor and issuer are named by the SHA-256 of their DER, not converted back."""
    try:
        certs = [x509.load_der_x509_certificate(d) for d in ders]
        ossl = [crypto.load_certificate(crypto.FILETYPE_ASN1, d) for d in ders]
    except (ValueError, crypto.Error) as exc:
        return Verdict(f"unparsable certificate: {exc}"), 0.0
    leaf = certs[0]
    try:
        verified = crypto.X509StoreContext(trust.store, ossl[0], ossl[1:]).get_verified_chain()
    except crypto.X509StoreContextError as exc:
        return Verdict(str(exc), leaf=leaf), 0.0
    problem = _eku_problem(leaf)
    if problem is not None:
        return Verdict(problem, leaf=leaf), 0.0
    sent = {_sha256(d): c for d, c in zip(ders, certs, strict=True)}
    digests = [_sha256(ders[0])] + [
        _sha256(crypto.dump_certificate(crypto.FILETYPE_ASN1, v)) for v in verified[1:]]
    members = [_member(trust, sent, d) for d in digests]
    issuer = members[1][1] if len(members) > 1 else None
    parts = san_parts(leaf)
    names, cn = _names(parts, leaf)
    until = min(c.not_valid_after_utc.timestamp() for _, c in members)
    return Verdict(
        None, members[-1][0], leaf, names, cn, leaf.subject.rfc4514_string(), issuer,
        members[1][0] if issuer is not None else None,
        digests[0] + digests[1] if issuer is not None else b"",
        issuer is not None and bool(ocsp.responders(leaf) or crl.distribution_points(leaf)),
        parts if any(not isinstance(p, str) for p in parts) else ()), until


def _member(trust: Trust, sent: Mapping[bytes, x509.Certificate], digest: bytes
            ) -> tuple[str | None, x509.Certificate]:
    """A verified chain's member: its ca_certificates id if it is one, and the certificate
    (OpenSSL builds chains only from the store and from what the client sent)."""
    known = trust.anchors.get(digest)
    return (known[0], known[1]) if known is not None else (None, sent[digest])


def _eku_problem(leaf: x509.Certificate) -> str | None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE \
            in eku:
        return None
    return "unsupported certificate purpose"


def _san(leaf: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def san_parts(leaf: x509.Certificate) -> tuple[SanPart, ...]:
    """The SAN values in the certificate's order, DirectoryNames as (OID, value) pairs."""
    parts: list[SanPart] = []
    for entry in _san(leaf) or ():
        if isinstance(entry, x509.DirectoryName):
            parts.append(directory_pairs(entry.value))
        elif not isinstance(entry, x509.OtherName | x509.RegisteredID):
            parts.append(str(entry.value))
    return tuple(parts)


def subject_names(leaf: x509.Certificate) -> tuple[tuple[str, ...], str | None]:
    """Every SAN value (DNS, email, URI, IP, in the certificate's order) then the CN; a
    DirectoryName joins only the consumer lookup (``dirname.lookup_names``)."""
    return _names(san_parts(leaf), leaf)


def _names(parts: Sequence[SanPart], leaf: x509.Certificate
           ) -> tuple[tuple[str, ...], str | None]:
    names = [p for p in parts if isinstance(p, str)]
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    if cn is not None:
        names.append(cn)
    return tuple(names), cn
