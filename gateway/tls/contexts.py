"""Server ``SSLContext``s built from a TLS policy and PEM held in memory.

The policy is KrakenD's ``tls`` block turned into OpenSSL terms once. Every context of a
listener (the listener's own and each per-SNI one) is built from the same policy, because
after an SNI switch the swapped-in context decides the TLS 1.2 ciphers, ALPN and the client-CA
store, while versions, TLS 1.3 suites and groups stay the listener's.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.settings.model import TLSServer, read_pem
from gateway.tls import libssl, suites

_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

DEFAULT_TLS12 = tuple(suites.TLS12_SUITES)  # seed 000's six TLS 1.2 suites, in its order


class PolicyError(ValueError):
    """The policy asks for something this process cannot do (the message says what)."""


@dataclass(frozen=True)
class ServerPolicy:
    """Everything a listener's contexts share. ``client_ca`` set means mTLS is required."""

    min_version: str = "TLS13"
    max_version: str = "TLS13"
    tls13_suites: tuple[str, ...] = tuple(suites.TLS13_SUITES.values())
    tls12_ciphers: tuple[str, ...] = tuple(suites.TLS12_SUITES[s] for s in DEFAULT_TLS12)
    groups: tuple[str, ...] = ("P-256", "P-384", "P-521")
    client_ca: str | None = None
    system_ca: bool = False
    alpn: tuple[str, ...] = ("http/1.1",)
    explicit: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, tls: TLSServer | None) -> ServerPolicy:
        if tls is None:
            return cls()
        chosen = tls.cipher_suites
        tls13 = tuple(suites.TLS13_SUITES[s] for s in chosen if s in suites.TLS13_SUITES)
        tls12 = tuple(suites.ALL_SUITES[s] for s in chosen if s not in suites.TLS13_SUITES)
        client_ca = None
        if tls.enable_mtls:
            client_ca = "".join(read_pem(path) for path in tls.ca_certs)
        defaults = TLSServer()
        explicit = frozenset(name for name in ("cipher_suites", "curve_preferences")
                             if getattr(tls, name) != getattr(defaults, name))
        if tls.enable_mtls:
            explicit |= {"enable_mtls"}
        return cls(
            min_version=tls.min_version, max_version=tls.max_version,
            tls13_suites=tls13 or cls.tls13_suites,
            tls12_ciphers=tls12 or cls.tls12_ciphers,
            groups=tuple(suites.CURVES[c] for c in tls.curve_preferences),
            client_ca=client_ca, system_ca=tls.enable_mtls and not tls.disable_system_ca_pool,
            explicit=explicit)

    @property
    def mtls(self) -> bool:
        return self.client_ca is not None

    def without_bridge(self) -> tuple[list[str], list[str]]:
        """What cannot be honoured without the libssl bridge: (refused, degraded) settings."""
        refused: list[str] = []
        degraded: list[str] = []
        for name, wanted in (("cipher_suites", "TLS 1.3 cipher suites"),
                             ("curve_preferences", "the key exchange group list"),
                             ("enable_mtls", "HTTP 401 for clients without a valid "
                                             "certificate (stdlib would drop them silently)")):
            target = refused if name in self.explicit else degraded
            if name != "enable_mtls" or self.mtls:
                target.append(f"tls.{name} ({wanted})")
        return refused, degraded

    def check(self) -> None:
        if "SSL3.0" in (self.min_version, self.max_version):
            raise PolicyError("tls.min_version/max_version: SSL 3.0 is not supported by the "
                              "OpenSSL this process uses")
        if libssl.BRIDGE is None:
            refused, _ = self.without_bridge()
            if refused:
                raise PolicyError("cannot honour " + ", ".join(refused) + " without the libssl "
                                  f"bridge ({libssl.UNAVAILABLE})")


def new_context(policy: ServerPolicy) -> ssl.SSLContext:
    """A server context carrying the policy, without certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[policy.min_version]
    ctx.maximum_version = _VERSIONS[policy.max_version]
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
                    | ssl.OP_CIPHER_SERVER_PREFERENCE)
    old = suites.version_rank(policy.min_version) < suites.version_rank("TLS12")
    ctx.set_ciphers(":".join(policy.tls12_ciphers) + (":@SECLEVEL=0" if old else ""))
    bridge = libssl.BRIDGE
    if bridge is not None:
        bridge.set_ciphersuites(ctx, ":".join(policy.tls13_suites))
        bridge.set_groups(ctx, ":".join(policy.groups))
    ctx.set_alpn_protocols(list(policy.alpn))
    if policy.mtls:
        if policy.client_ca:
            ctx.load_verify_locations(cadata=policy.client_ca)
        if policy.system_ca:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        # Without tickets every connection does a full handshake, so the client chain is
        # verified each time instead of being resumed from a session.
        ctx.num_tickets = 0
        ctx.options |= ssl.OP_NO_TICKET
        if bridge is not None:
            bridge.request_client_cert(ctx)
        else:
            ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@contextlib.contextmanager
def _memfd(name: str, data: str) -> Iterator[str]:
    """PEM handed to OpenSSL through an anonymous in-memory file: never on a filesystem."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data.encode())
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def load_pair(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """Add a certificate chain and its key; a second pair of another key type (RSA next to
    ECDSA) is kept alongside, and OpenSSL serves each client the type it supports."""
    with _memfd("cert", cert_pem) as cert_path, _memfd("key", key_pem) as key_path:
        ctx.load_cert_chain(cert_path, key_path)


def pair_error(cert_pem: str, key_pem: str) -> str | None:
    """Why OpenSSL would refuse to serve or present this pair (a key too small for the
    security level, a weak signature, PEM it reads more strictly than cryptography), checked
    when a certificate is written: the snapshot loads the same pair into the same kind of
    context, and must never fail to."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # the default security level, as ours use
    try:
        load_pair(ctx, cert_pem, key_pem)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return openssl_reason(exc)
    return None


def ca_error(cert_pem: str) -> str | None:
    """Why OpenSSL would refuse this CA certificate as trust (``cadata``), as ``pair_error``."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cert_pem)
    except (ssl.SSLError, OSError, ValueError) as exc:
        return openssl_reason(exc)
    return None


def openssl_reason(exc: Exception) -> str:
    text = str(exc).split(" (_ssl.c", 1)[0]
    if text.endswith("PEM lib"):  # load_cert_chain's only word for PEM it cannot read
        text += ": the PEM cannot be read (does each -----BEGIN line start its line?)"
    return text


def server_context(policy: ServerPolicy, pairs: list[tuple[str, str]]) -> ssl.SSLContext:
    ctx = new_context(policy)
    for cert_pem, key_pem in pairs:
        load_pair(ctx, cert_pem, key_pem)
    return ctx
