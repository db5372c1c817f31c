"""Certificates set per connection through libssl, instead of one ``SSLContext`` each.

A ``Credential`` is one certificate's key pairs (one, or RSA next to ECDSA) parsed once into
libssl's own objects: the leaf ``X509*``, the ``EVP_PKEY*`` and the chain's
``STACK_OF(X509)*`` (NULL when the PEM holds the leaf only, as ``load_cert_chain`` leaves it,
so OpenSSL's automatic chain building behaves as with a context). Inside the SNI callback
``install`` replaces the connection's certificates with them: ``SSL_certs_clear`` (the
listener's default pairs must not stay next to them) and one ``SSL_use_cert_and_key`` per
pair. The connection keeps the listener's context, so everything else a per-certificate
context carried (versions, suites, ALPN, the client-CA store, ticket keys, the session ID
context) is the listener's, built from the same policy; ``cert`` is kept for the ASGI
``server_cert`` the context used to carry.

Lifetime: ``SSL_use_cert_and_key`` takes references of its own (``X509_up_ref``,
``EVP_PKEY_up_ref``, ``X509_chain_up_ref``), so a connection never depends on the
``Credential`` after ``install``. The ``Credential`` frees its references when the last
Python reference goes: an LRU dropping it (even from another thread, while ctypes released
the GIL) while a handshake holds it in a local variable frees nothing under that handshake.

About 6.5 KB of heap per ECDSA certificate against ~19 KB per context, and a fifth of the
CPU to build (docs/benchmarks.md, "Certificates per connection").
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import threading
from typing import Any

from gateway.tls import libssl
from gateway.tls.libssl import Bridge

log = logging.getLogger("ramparts.tls")

_SELECT_KEYPAIR = 0x87  # OSSL_KEYMGMT_SELECT_ALL: what PEM_read_bio_PrivateKey selects
_Pair = tuple[int, int, int | None]  # X509*, EVP_PKEY*, STACK_OF(X509)* (None: no chain)


class CredentialError(ValueError):
    """libssl cannot read or use this certificate and key (the message says why)."""


class Native:
    """The libssl functions credentials use, bound once (on the bridge's libraries)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        lib, crypto = bridge.ssl_lib, bridge.crypto_lib
        vp, ci = ctypes.c_void_p, ctypes.c_int
        signatures: list[tuple[Any, str, Any, list[Any]]] = [
            (lib, "SSL_use_cert_and_key", ci, [vp, vp, vp, vp, ci]),
            (lib, "SSL_certs_clear", None, [vp]),
            (lib, "SSL_get_certificate", vp, [vp]),
            (crypto, "BIO_new_mem_buf", vp, [ctypes.c_char_p, ci]),
            (crypto, "BIO_free", ci, [vp]),
            (crypto, "PEM_read_bio_X509", vp, [vp, vp, vp, vp]),
            (crypto, "PEM_read_bio_PrivateKey", vp, [vp, vp, vp, ctypes.c_char_p]),
            (crypto, "X509_check_private_key", ci, [vp, vp]),
            (crypto, "X509_free", None, [vp]),
            (crypto, "EVP_PKEY_free", None, [vp]),
            (crypto, "OPENSSL_sk_new_null", vp, []),
            (crypto, "OPENSSL_sk_push", ci, [vp, vp]),
            (crypto, "OPENSSL_sk_pop_free", None, [vp, vp]),
            (crypto, "ERR_get_error", ctypes.c_ulong, []),
            (crypto, "ERR_clear_error", None, []),
            (crypto, "ERR_error_string_n", None, [ctypes.c_ulong, ctypes.c_char_p,
                                                   ctypes.c_size_t]),
        ]
        for owner, name, restype, argtypes in signatures:
            fn = getattr(owner, name)
            fn.restype, fn.argtypes = restype, argtypes
        self.use = lib.SSL_use_cert_and_key
        self.clear = lib.SSL_certs_clear
        self.crypto = crypto
        self.x509_free = ctypes.cast(crypto.X509_free, vp).value
        self._decoder, self._decoded = _key_decoder(crypto)
        self._decoding = threading.Lock()  # a decoder context is not for two threads at once

    def credential(self, pairs: list[tuple[str, str]], cert: str) -> Credential:
        """Parse every pair (off the loop when a reload builds it; ~0.2 ms for ECDSA)."""
        parsed: list[_Pair] = []
        try:
            for cert_pem, key_pem in pairs:
                parsed.append(self._pair(cert_pem, key_pem))
        except CredentialError:
            for pair in parsed:
                self.free(pair)
            raise
        finally:
            # built inside a handshake, nothing may stay queued: SSL_get_error reports any
            # error left in this thread's queue as the handshake's own
            self.crypto.ERR_clear_error()
        return Credential(self, tuple(parsed), cert)

    def _pair(self, cert_pem: str, key_pem: str) -> _Pair:
        certs = self._read(cert_pem.encode(), self.crypto.PEM_read_bio_X509, many=True)
        if not certs:
            raise CredentialError(self._reason("no certificate in the PEM"))
        keys = self._key(key_pem.encode())
        chain: int | None = None
        try:
            if not keys:
                raise CredentialError(self._reason("no private key in the PEM"))
            if self.crypto.X509_check_private_key(certs[0], keys[0]) != 1:
                raise CredentialError(self._reason("the key does not match the certificate"))
            if len(certs) > 1:
                chain = self.crypto.OPENSSL_sk_new_null()
                for extra in certs[1:]:
                    self.crypto.OPENSSL_sk_push(chain, extra)
                certs = certs[:1]  # the stack owns the rest now
        except CredentialError:
            for x509 in certs:
                self.crypto.X509_free(x509)
            for key in keys:
                self.crypto.EVP_PKEY_free(key)
            raise
        return certs[0], keys[0], chain

    def _read(self, pem: bytes, read: Any, many: bool) -> list[int]:
        """Every object (or the first) ``read`` finds in ``pem``. An empty passphrase: an
        encrypted key fails instead of OpenSSL prompting on a terminal."""
        bio = self.crypto.BIO_new_mem_buf(pem, len(pem))
        if not bio:
            raise CredentialError("out of memory")
        out: list[int] = []
        try:
            while True:
                found = read(bio, None, None, b"")
                if not found:
                    break
                out.append(found)
                if not many:
                    break
        finally:
            self.crypto.BIO_free(bio)
            if out:
                # the read that ended the loop queued "no start line": not an error here
                self.crypto.ERR_clear_error()
        return out

    def _key(self, pem: bytes) -> list[int]:
        """The private key in ``pem``, through the decoder context made once: OpenSSL 3.0's
        ``PEM_read_bio_PrivateKey`` sets one up per key, ~15 times slower (~500 µs)."""
        if self._decoder is None:
            return self._read(pem, self.crypto.PEM_read_bio_PrivateKey, many=False)
        bio = self.crypto.BIO_new_mem_buf(pem, len(pem))
        if not bio:
            raise CredentialError("out of memory")
        try:
            with self._decoding:
                self._decoded.value = None
                ok = self.crypto.OSSL_DECODER_from_bio(self._decoder, bio)
                key = self._decoded.value
        finally:
            self.crypto.BIO_free(bio)
        if ok == 1 and key:
            return [key]
        if key:
            self.crypto.EVP_PKEY_free(key)
        return []

    def _reason(self, what: str) -> str:
        code = self.crypto.ERR_get_error()
        self.crypto.ERR_clear_error()
        if not code:
            return what
        buf = ctypes.create_string_buffer(256)
        self.crypto.ERR_error_string_n(code, buf, 256)
        return f"{what} ({buf.value.decode(errors='replace')})"

    def free(self, pair: _Pair) -> None:
        x509, key, chain = pair
        self.crypto.X509_free(x509)
        self.crypto.EVP_PKEY_free(key)
        if chain:
            self.crypto.OPENSSL_sk_pop_free(chain, self.x509_free)

    def install(self, obj: Any, credential: Credential) -> bool:
        """Sync, inside the SNI callback: serve ``credential`` on this connection only. False
        (the connection then has no certificate: install another) if libssl refused it."""
        ssl_ptr = self.bridge.ssl_ptr(obj)
        self.clear(ssl_ptr)
        use = self.use
        for x509, key, chain in credential.pairs:
            if use(ssl_ptr, x509, key, chain, 1) != 1:
                log.error("libssl refused a certificate: %s", self._reason("SSL_use_cert_and_key"))
                return False
        return True

    def serves(self, obj: Any, credential: Credential) -> bool:
        """Whether the connection's current certificate is the credential's last leaf (the
        self-check: ``SSL_get_certificate`` reads it back)."""
        current = self.bridge.ssl_lib.SSL_get_certificate(self.bridge.ssl_ptr(obj))
        return bool(current == credential.pairs[-1][0])


def _key_decoder(crypto: Any) -> tuple[int | None, ctypes.c_void_p]:
    """An OpenSSL 3 decoder context for private keys of any type in PEM or DER, writing each
    key it decodes to the returned pointer (None: this libcrypto has none, 1.1.1). With an
    empty passphrase: an encrypted key fails instead of OpenSSL asking a terminal."""
    out = ctypes.c_void_p()
    try:
        new = crypto.OSSL_DECODER_CTX_new_for_pkey
        decode = crypto.OSSL_DECODER_from_bio
        passphrase = crypto.OSSL_DECODER_CTX_set_passphrase
    except AttributeError:
        return None, out
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    new.restype, new.argtypes = vp, [vp, cp, cp, cp, ctypes.c_int, vp, cp]
    decode.restype, decode.argtypes = ctypes.c_int, [vp, vp]
    passphrase.restype, passphrase.argtypes = ctypes.c_int, [vp, cp, ctypes.c_size_t]
    decoder = new(ctypes.byref(out), None, None, None, _SELECT_KEYPAIR, None, None)
    if not decoder:
        return None, out
    passphrase(decoder, b"", 0)
    return decoder, out


class Credential:
    """One certificate's pairs as libssl objects, owned by this object (freed with it)."""

    __slots__ = ("cert", "native", "pairs")

    def __init__(self, native: Native, pairs: tuple[_Pair, ...], cert: str) -> None:
        self.native = native
        self.pairs = pairs
        self.cert = cert  # the leaf's PEM, for the ASGI TLS extension's server_cert

    def __del__(self) -> None:
        pairs, self.pairs = self.pairs, ()
        for pair in pairs:
            self.native.free(pair)


def check(native: Native, listener: ssl.SSLContext, pairs: list[tuple[str, str]]
          ) -> Credential:
    """Install ``pairs`` on a connection of ``listener`` that is never used, and read the
    certificate back: the bridge's layout assumptions hold for these calls too. Returns the
    credential (the listener's default, for connections whose certificate failed)."""
    credential = native.credential(pairs, pairs[0][0])
    obj = listener.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    if not native.install(obj, credential) or not native.serves(obj, credential):
        raise OSError("SSL_use_cert_and_key did not take effect")
    return credential


def load(listener: ssl.SSLContext, pairs: list[tuple[str, str]]
         ) -> tuple[Native | None, Credential | None]:
    """Native credentials if the bridge works and its self-check passes; otherwise (None,
    None) and the caller keeps one context per certificate (logged once, here)."""
    bridge = libssl.BRIDGE
    if bridge is None:
        log.warning("libssl bridge unavailable (%s): one SSL context per certificate "
                    "(~19 KB each) instead of certificates set per connection",
                    libssl.UNAVAILABLE)
        return None, None
    try:
        native = Native(bridge)
        return native, check(native, listener, pairs)
    except (OSError, AttributeError, CredentialError, ssl.SSLError) as exc:
        log.warning("certificates per connection unavailable (%s): one SSL context per "
                    "certificate (~19 KB each)", exc)
        return None, None
