"""The ASGI TLS extension (``scope["extensions"]["tls"]``) for one connection.

Computed once per connection, right after the handshake, from the transport's SSL object.
Keys of the ASGI spec (``server_cert``, ``client_cert_chain``, ``client_cert_name``,
``client_cert_error``, ``tls_version``, ``cipher_suite``) plus ours: ``server_name`` (the SNI
the client sent), ``alpn``, ``session_reused``, ``client_cert_verified`` and ``verdicts`` (a
per-connection cache where mtls-auth keeps its chain verdicts).
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509

from gateway.tls import libssl

_VERSION_IDS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _cipher_ids() -> dict[str, int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}


CIPHER_IDS = _cipher_ids()


def _chain(obj: Any) -> list[str]:
    raw = obj._sslobj  # 3.11: the chain getters live on the private _SSLSocket (public in 3.13)
    certs = [c for c in (raw.get_unverified_chain() or []) if c is not None]
    chain = [c.public_bytes(ssl._ssl.ENCODING_PEM) for c in certs]  # type: ignore[attr-defined]
    if not chain:
        leaf = obj.getpeercert(binary_form=True)
        if leaf:  # a resumed session keeps the leaf only
            chain = [ssl.DER_cert_to_PEM_cert(leaf)]
    return chain


def tls_info(obj: Any) -> dict[str, Any]:
    """``obj`` is the connection's ``ssl.SSLObject`` (after the handshake)."""
    name, _, _ = obj.cipher() or ("", "", 0)
    chain = _chain(obj)
    client_name = error = None
    verified = False
    if chain:
        leaf = x509.load_pem_x509_certificate(chain[0].encode())
        client_name = leaf.subject.rfc4514_string()
        error = verify_error(obj)
        verified = error is None
    return {
        # set on the connection when its certificate was installed on it (native.py)
        "server_cert": getattr(obj, "ramparts_cert", None)
        or getattr(obj.context, "ramparts_cert", None),
        "client_cert_chain": chain,
        "client_cert_name": client_name,
        "client_cert_error": error,
        "tls_version": _VERSION_IDS.get(obj.version() or ""),
        "cipher_suite": CIPHER_IDS.get(name),
        "server_name": getattr(obj, "ramparts_sni", None),
        "alpn": obj.selected_alpn_protocol(),
        "session_reused": obj.session_reused,
        "client_cert_verified": verified,
        "verdicts": {},  # plugins' verdicts on this chain, kept for the connection's life
    }


def verify_error(obj: Any) -> str | None:
    """OpenSSL's verdict on the client chain (None when it verified)."""
    bridge = libssl.BRIDGE
    if bridge is not None:
        code = bridge.verify_result(obj)
        return None if code == 0 else f"{bridge.verify_error(code)} (X509_V_ERR {code})"
    # without the bridge a bad chain never completes the handshake
    return None if obj.context.verify_mode != ssl.CERT_NONE else "not verified"
