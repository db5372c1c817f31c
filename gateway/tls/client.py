"""Client-side TLS towards upstreams: the profile (pure data) and the context built from it.

A ``ClientProfile`` is everything that makes an upstream TLS connection what it is:
verification, verify depth, trusted CAs, the client certificate presented, versions, suites
and groups. Equal profiles share one context and one connection pool; a connection is never
reused under another profile, so never with another client certificate.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.tls import libssl
from gateway.tls.contexts import _VERSIONS, load_pair, openssl_reason


@dataclass(frozen=True, slots=True)
class ClientProfile:
    verify: bool = True
    depth: int | None = None          # OpenSSL's verify depth: the most intermediates allowed
    ca_pem: str = ""                  # trusted CAs (PEM); with `system_ca` also the system's
    system_ca: bool = True
    cert: str | None = None           # client certificate chain presented to the upstream
    key: str | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    tls13_suites: tuple[str, ...] = ()   # empty: OpenSSL's defaults
    tls12_ciphers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # a pool key holds the profile, and every request looks its pool up: the generated
    # __hash__ would hash all eleven fields in Python each time
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((
            self.verify, self.depth, self.ca_pem, self.system_ca, self.cert, self.key,
            self.min_version, self.max_version, self.tls13_suites, self.tls12_ciphers,
            self.groups)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def label(self) -> str:
        """A short, stable name for logs (no key material)."""
        h = hashlib.sha256(repr((self.verify, self.depth, self.ca_pem, self.system_ca,
                                 self.cert, self.min_version, self.max_version,
                                 self.tls13_suites, self.tls12_ciphers, self.groups))
                           .encode()).hexdigest()[:12]
        return f"tls-{h}"


class DepthExceeded(ssl.SSLCertVerificationError):
    """The verified chain is longer than the service's ``tls_verify_depth`` allows."""


class _DepthCheckedObject(ssl.SSLObject):
    """Enforces the verify depth as OpenSSL's ``-verify_depth`` does (counting
    intermediates); runs inside the handshake, before any request byte is sent."""

    max_depth: ClassVar[int] = 0

    def do_handshake(self) -> None:
        super().do_handshake()
        if self.context.verify_mode == ssl.CERT_NONE:
            return
        chain = self._sslobj.get_verified_chain() or []  # type: ignore[attr-defined]
        intermediates = max(0, len(chain) - 2)
        if intermediates > self.max_depth:
            raise DepthExceeded(1, f"certificate chain too long ({intermediates} "
                                   f"intermediates; tls_verify_depth is {self.max_depth})")


def client_context(profile: ClientProfile) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if profile.verify:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if profile.ca_pem:
            ctx.load_verify_locations(cadata=profile.ca_pem)
        if profile.system_ca:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = _VERSIONS[profile.min_version]
    ctx.maximum_version = _VERSIONS[profile.max_version]
    if profile.tls12_ciphers:
        ctx.set_ciphers(":".join(profile.tls12_ciphers))
    bridge = libssl.BRIDGE
    if bridge is not None:
        if profile.tls13_suites:
            bridge.set_ciphersuites(ctx, ":".join(profile.tls13_suites))
        if profile.groups:
            bridge.set_groups(ctx, ":".join(profile.groups))
    if profile.cert and profile.key:
        load_pair(ctx, profile.cert, profile.key)
    if profile.depth is not None and profile.verify:
        ctx.sslobject_class = type("DepthChecked", (_DepthCheckedObject,),
                                   {"max_depth": profile.depth})
    return ctx


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (explicit or implicit), each once."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    return chain


def is_tls_failure(exc: BaseException) -> bool:
    """An ``ssl.SSLError`` (other than an EOF) anywhere in the chain: in TLS 1.3 the
    upstream's verdict on our client certificate arrives after the handshake, as an error on
    the first read."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLError):
            # an EOF is a closed (maybe stale pooled) connection: retryable, not a verdict
            return not isinstance(cause, ssl.SSLEOFError | ssl.SSLZeroReturnError)
    return False


def describe_failure(exc: BaseException) -> str:
    """The cause of an upstream TLS failure in words an operator searches for."""
    text = ""
    for cause in _chain(exc):
        if str(cause) not in text:  # aiohttp repeats its cause's words
            text += " " + str(cause)
    lowered = text.lower()
    for needle, meaning in (
            ("chain too long", "certificate chain too long (tls_verify_depth exceeded)"),
            ("hostname mismatch", "hostname mismatch"),
            ("certificate has expired", "upstream certificate expired"),
            ("self-signed certificate", "self-signed upstream certificate"),
            ("unable to get local issuer", "unknown CA (not in the trusted CA set)"),
            ("certificate required", "the upstream requires a client certificate"),
            ("alert bad certificate", "the upstream rejected the client certificate"),
            ("alert unknown ca", "the upstream does not trust the client certificate"),
            ("certificate verify failed", "upstream certificate verification failed"),
            ("handshake", "TLS handshake failed")):
        if needle in lowered:
            return f"{meaning}: {text.strip()}"
    return text.strip() or type(exc).__name__


@dataclass(frozen=True, slots=True)
class ClientDefaults:
    """What applies to every upstream unless the service (or upstream entity) says otherwise:
    KrakenD's ``client_tls`` block, Kong's ``client_ssl_cert`` and
    ``lua_ssl_trusted_certificate``. Read once at start."""

    verify: bool = True
    ca_pem: str = ""
    system_ca: bool = True
    cert: str | None = None
    key: str | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    tls13_suites: tuple[str, ...] = ()
    tls12_ciphers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


def client_defaults(settings: Any) -> ClientDefaults:
    from gateway.settings.model import read_pem
    from gateway.tls import suites

    trusted = [t for t in settings.lua_ssl_trusted_certificate if t != "system"]
    system = "system" in settings.lua_ssl_trusted_certificate
    cert = key = None
    if settings.client_ssl_cert and settings.client_ssl_cert_key:
        cert, key = read_pem(settings.client_ssl_cert), read_pem(settings.client_ssl_cert_key)
    tls = settings.client_tls
    if tls is None:
        return checked(ClientDefaults(ca_pem="".join(read_pem(t) for t in trusted),
                                      system_ca=system, cert=cert, key=key))
    if cert is None and tls.client_certs:
        first = tls.client_certs[0]
        cert, key = read_pem(first.certificate), read_pem(first.private_key)
    chosen = tls.cipher_suites
    return checked(ClientDefaults(
        verify=not tls.allow_insecure_connections,
        ca_pem="".join(read_pem(p) for p in (*tls.ca_certs, *trusted)),
        system_ca=system and not tls.disable_system_ca_pool, cert=cert, key=key,
        min_version=tls.min_version, max_version=tls.max_version,
        tls13_suites=tuple(suites.TLS13_SUITES[s] for s in chosen if s in suites.TLS13_SUITES),
        tls12_ciphers=tuple(suites.ALL_SUITES[s] for s in chosen
                            if s not in suites.TLS13_SUITES),
        groups=tuple(suites.CURVES[c] for c in tls.curve_preferences)))


def checked(defaults: ClientDefaults) -> ClientDefaults:
    """Every upstream TLS context of every snapshot starts from these defaults: if OpenSSL
    refuses them (only legacy suites it no longer ships, a client key too small, a CA file it
    cannot read), say so at start instead of failing every configuration build."""
    profile = ClientProfile(
        verify=defaults.verify, ca_pem=defaults.ca_pem, system_ca=defaults.system_ca,
        cert=defaults.cert, key=defaults.key, min_version=defaults.min_version,
        max_version=defaults.max_version, tls13_suites=defaults.tls13_suites,
        tls12_ciphers=defaults.tls12_ciphers, groups=defaults.groups)
    try:
        client_context(profile)
    except ssl.SSLError as exc:
        raise ValueError("OpenSSL refuses the client TLS settings: "
                         f"{openssl_reason(exc)}") from exc
    return defaults
