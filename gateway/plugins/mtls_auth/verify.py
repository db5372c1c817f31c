"""Client chain verification for mtls-auth, with OpenSSL's semantics (pyOpenSSL ``X509Store``).

OpenSSL's verifier, not cryptography's strict one, because users make X.509 v1 client
certificates with ``openssl x509 -req`` (seeds 001, 003) and OpenSSL accepts them. A trust
store is built once per CA set (and partial-chain flag) and shared; a verdict is computed
once per connection by the handler, never per request.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import crypto

from gateway.plugins.mtls_auth import crl, ocsp
from gateway.plugins.mtls_auth.dirname import SanPart, directory_pairs

_STORES: OrderedDict[tuple[object, ...], Trust] = OrderedDict()
_LOCK = threading.Lock()
_MAX_STORES = 256
_SHA256 = hashes.SHA256()


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one per cached set
class Trust:
    store: crypto.X509Store
    anchors: Mapping[bytes, str]  # SHA-256 of a CA certificate (DER) -> its ca_certificates id


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
    anchors: dict[bytes, str] = {}
    for ca_id, pem in cas:
        for cert in x509.load_pem_x509_certificates(pem.encode()):
            store.add_cert(crypto.X509.from_cryptography(cert))
            anchors[_digest(cert)] = ca_id
    if partial:
        store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    trust = Trust(store, anchors)
    with _LOCK:
        _STORES[key] = trust
        while len(_STORES) > _MAX_STORES:
            _STORES.popitem(last=False)
    return trust


def _digest(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(_SHA256)


def verify(trust: Trust, chain_pem: Sequence[str]) -> Verdict:
    """``chain_pem``: the client's chain as sent, leaf first."""
    try:
        certs = [x509.load_pem_x509_certificate(p.encode()) for p in chain_pem]
    except ValueError as exc:
        return Verdict(f"unparsable certificate: {exc}")
    leaf = certs[0]
    context = crypto.X509StoreContext(
        trust.store, crypto.X509.from_cryptography(leaf),
        [crypto.X509.from_cryptography(c) for c in certs[1:]])
    try:
        context.verify_certificate()
        verified = context.get_verified_chain()
    except crypto.X509StoreContextError as exc:
        return Verdict(str(exc), leaf=leaf)
    problem = _eku_problem(leaf)
    if problem is not None:
        return Verdict(problem, leaf=leaf)
    anchor = trust.anchors.get(_digest(verified[-1].to_cryptography()))
    names, cn = subject_names(leaf)
    parts = san_parts(leaf)
    issuer = verified[1].to_cryptography() if len(verified) > 1 else None
    issuer_ca = trust.anchors.get(_digest(issuer)) if issuer is not None else None
    key = sources = None
    if issuer is not None:
        key = leaf.fingerprint(_SHA256) + issuer.fingerprint(_SHA256)
        sources = bool(ocsp.responders(leaf) or crl.distribution_points(leaf))
    return Verdict(None, anchor, leaf, names, cn, leaf.subject.rfc4514_string(), issuer,
                   issuer_ca, key or b"", bool(sources),
                   parts if any(not isinstance(p, str) for p in parts) else ())


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
    names = [p for p in san_parts(leaf) if isinstance(p, str)]
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    if cn is not None:
        names.append(cn)
    return tuple(names), cn
