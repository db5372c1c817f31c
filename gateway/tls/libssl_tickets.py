"""Session ticket keys through libssl: OpenSSL 3's ``SSL_CTX_set_tlsext_ticket_key_evp_cb``
driven from Python (part of the libssl bridge, ``libssl.Bridge.tickets``).

The stdlib has no ticket key API: each process encrypts tickets under random keys of its own.
This callback lets the application choose the key per ticket (``tickets.py`` derives them),
and refuse a ticket for an SNI. OpenSSL calls it on the context a connection was accepted on
(the SSL's session context), even after the SNI callback switched the connection's context.
Bound separately from the rest of the bridge: an OpenSSL without it (1.1.1) loses only this.

A new ticket's key comes from C where the ``gateway.tls._tickets`` extension was built
(``_tickets.c``): it keeps the current key and its interval and calls the Python callback
for everything else (a ticket to decrypt, a key past its interval, a failure), which hands it
the next key. Without the extension every ticket asks Python, at ~18 µs each.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("ramparts.tls")

# int cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx,
#        EVP_MAC_CTX *hctx, int enc)
_TICKET_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
_OSSL_PARAM_UTF8_STRING, _OSSL_PARAM_OCTET_STRING = 4, 5
_OSSL_PARAM_UNMODIFIED = ctypes.c_size_t(-1).value
_TLS1_3_VERSION = 0x0304


class _OsslParam(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("data_type", ctypes.c_uint),
                ("data", ctypes.c_void_p), ("data_size", ctypes.c_size_t),
                ("return_size", ctypes.c_size_t)]


@dataclass(frozen=True, slots=True)
class TicketKey:
    """One session ticket key as nginx's 80-byte key files hold it: a 16-byte name (sent in
    the clear in each ticket), a 32-byte HMAC-SHA256 key and a 32-byte AES-256-CBC key."""

    name: bytes
    hmac: bytes
    aes: bytes


# The ticket callback's questions (sync, inside the handshake, no I/O): which key encrypts
# a new ticket now, and from when until when by the wall clock it stays that key (an empty
# interval: ask for every ticket); which key decrypts a ticket named so for this SNI, and
# whether the client should get a fresh ticket (the key is not the current one) -- None:
# full handshake.
Encrypting = Callable[[], tuple[TicketKey, float, float] | None]
Decrypting = Callable[[bytes, str | None], tuple[TicketKey, bool] | None]


@dataclass
class _PreparedKey:
    """A key's buffers and OSSL_PARAM array, built once per key, kept alive while in use."""

    key: TicketKey
    aes: Any
    params: Any
    keep: tuple[Any, ...]


@dataclass
class TicketCallback:
    """Installed on a context by ``Bridge.set_ticket_callback``; holds the C function pointer
    (C keeps a raw pointer: this object must live as long as the context)."""

    bridge: TicketBridge
    encrypting: Encrypting
    decrypting: Decrypting
    pointer: Any = None
    slot: int | None = None  # its slot in _tickets.c; None: every ticket asks Python
    python_encrypts: int = 0  # new tickets whose key Python gave (C gave the others)
    failed: bool = False  # logged once
    _prepared: dict[bytes, _PreparedKey] = field(default_factory=dict)

    def prepared(self, key: TicketKey) -> _PreparedKey:
        hit = self._prepared.get(key.name)
        # the schedule hands out the same object for an epoch: identity is the common case
        if hit is not None and (hit.key is key or hit.key == key):
            return hit
        if len(self._prepared) >= 8:  # keys rotate: drop the old ones
            self._prepared.clear()
        hmac = ctypes.create_string_buffer(key.hmac, len(key.hmac))
        digest = ctypes.create_string_buffer(b"SHA256")
        params = (_OsslParam * 3)(
            _OsslParam(b"key", _OSSL_PARAM_OCTET_STRING, ctypes.addressof(hmac), len(key.hmac),
                       _OSSL_PARAM_UNMODIFIED),
            _OsslParam(b"digest", _OSSL_PARAM_UTF8_STRING, ctypes.addressof(digest), 6,
                       _OSSL_PARAM_UNMODIFIED),
            _OsslParam(None, 0, None, 0, 0))
        aes = ctypes.create_string_buffer(key.aes, len(key.aes))
        hit = _PreparedKey(key, aes, params, (hmac, digest))
        self._prepared[key.name] = hit
        return hit

    def __call__(self, ssl_ptr: int, name: int, iv: int, cipher: int, mac: int, enc: int
                 ) -> int:
        # sync: runs inside the handshake (the GIL is taken back for it); memory only
        try:
            return self._encrypt(name, iv, cipher, mac) if enc else \
                self._decrypt(ssl_ptr, name, iv, cipher, mac)
        except Exception:  # an exception must not cross into C: no ticket / full handshake
            log.exception("session ticket callback failed")
            return 0

    def _encrypt(self, name: int, iv: int, cipher: int, mac: int) -> int:
        self.python_encrypts += 1
        found = self.encrypting()
        if found is None:
            return 0  # no ticket
        key, start, end = found
        lib = self.bridge.crypto_lib
        if lib.RAND_bytes(iv, 16) != 1:
            return self._failed("RAND_bytes")
        ctypes.memmove(name, key.name, 16)
        done = self._init(key, lib.EVP_EncryptInit_ex, iv, cipher, mac)
        if done and self.slot is not None and start < end:  # C issues the next ones
            self.bridge.native.ramparts_tickets_set_key(self.slot, key.name, key.hmac,
                                                        key.aes, start, end)
        return done

    def _decrypt(self, ssl_ptr: int, name: int, iv: int, cipher: int, mac: int) -> int:
        found = self.decrypting(ctypes.string_at(name, 16), self.bridge.hello_sni(ssl_ptr))
        if found is None:
            return 0  # unknown, too old, or refused for this SNI: a full handshake
        key, renew = found
        done = self._init(key, self.bridge.crypto_lib.EVP_DecryptInit_ex, iv, cipher, mac)
        # 2: resume, and send fresh tickets. A TLS 1.3 ticket is for one use (RFC 8446
        # C.4): OpenSSL clients drop it once resumed, so without new tickets (OpenSSL sends
        # none on 1) a client chaining connections resumed only every other one. nginx
        # renews in TLS 1.3 alike; TLS 1.2 renews only tickets of an older key.
        renew = renew or self.bridge.ssl_lib.SSL_version(ssl_ptr) == _TLS1_3_VERSION
        return done and (2 if renew else 1)

    def _init(self, key: TicketKey, init: Any, iv: int, cipher: int, mac: int) -> int:
        ready = self.prepared(key)
        if self.bridge.crypto_lib.EVP_MAC_CTX_set_params(mac, ready.params) != 1:
            return self._failed("EVP_MAC_CTX_set_params")
        if init(cipher, self.bridge.aes_256_cbc, None, ready.aes, iv) != 1:
            return self._failed("EVP_CipherInit_ex")
        return 1

    def _failed(self, what: str) -> int:
        """Never fail the handshake (-1 would): no ticket issued, or a full handshake."""
        if not self.failed:
            self.failed = True
            log.error("session tickets: %s failed in libssl; affected connections do a full "
                      "handshake", what)
        return 0


def sni_of(extension: bytes) -> str | None:
    """The host name in a server_name extension's body (RFC 6066 §3): list length (2), then
    entries of type (1), length (2), name; None if malformed or absent."""
    at, end = 2, min(len(extension), 2 + int.from_bytes(extension[:2], "big"))
    while at + 3 <= end:
        kind, size = extension[at], int.from_bytes(extension[at + 1:at + 3], "big")
        name = extension[at + 3:at + 3 + size]
        if kind == 0 and len(name) == size:
            return name.decode("ascii", "replace")
        at += 3 + size
    return None


@dataclass(frozen=True)
class TicketBridge:
    """The libssl/libcrypto functions the ticket callback uses, bound once."""

    ssl_lib: Any
    crypto_lib: Any
    aes_256_cbc: int  # const EVP_CIPHER* of the ticket cipher (nginx's: AES-256-CBC)
    native: Any = None  # _tickets.c, bound to this libcrypto; None: not built here

    def install(self, ctx_ptr: int, encrypting: Encrypting, decrypting: Decrypting,
                in_c: bool = True) -> TicketCallback:
        """The callback on the context at ``ctx_ptr``: C's slot callback when ``in_c`` and a
        slot is free (the slot goes back when the callback object does, so the context must
        hold it: ``Bridge.set_ticket_callback``), else the Python one."""
        callback = TicketCallback(self, encrypting, decrypting)
        callback.pointer = _TICKET_CB(callback)
        pointer = ctypes.cast(callback.pointer, ctypes.c_void_p)
        if in_c and self.native is not None:
            slot = self.native.ramparts_tickets_acquire(pointer)
            if slot >= 0:  # else all eight are taken: this context's tickets ask Python
                callback.slot = slot
                weakref.finalize(callback, self.native.ramparts_tickets_release, slot)
                pointer = self.native.ramparts_tickets_callback(slot)
        if self.ssl_lib.SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx_ptr, pointer) != 1:
            raise OSError("cannot set the session ticket key callback")
        return callback

    def hello_sni(self, ssl_ptr: int) -> str | None:
        """The SNI the client sent, while its ClientHello is processed. TLS 1.2 decrypts a
        ticket before the server_name extension is parsed (and would then report the
        session's name), so it is read from the raw extension."""
        out, size = ctypes.c_void_p(), ctypes.c_size_t()
        if self.ssl_lib.SSL_client_hello_get0_ext(ssl_ptr, 0, ctypes.byref(out),
                                                  ctypes.byref(size)) != 1 or not out.value:
            return None
        return sni_of(ctypes.string_at(out.value, size.value))


def bind(lib: Any, crypto: Any) -> TicketBridge:
    """Raises AttributeError when this libssl lacks a function (OpenSSL before 3.0)."""
    vp, ci = ctypes.c_void_p, ctypes.c_int
    signatures: list[tuple[Any, str, Any, list[Any]]] = [
        (lib, "SSL_CTX_set_tlsext_ticket_key_evp_cb", ci, [vp, vp]),
        (lib, "SSL_client_hello_get0_ext", ci, [vp, ctypes.c_uint, ctypes.POINTER(vp),
                                                ctypes.POINTER(ctypes.c_size_t)]),
        (lib, "SSL_version", ci, [vp]),
        (crypto, "RAND_bytes", ci, [vp, ci]),
        (crypto, "EVP_aes_256_cbc", vp, []),
        (crypto, "EVP_EncryptInit_ex", ci, [vp, vp, vp, vp, vp]),
        (crypto, "EVP_DecryptInit_ex", ci, [vp, vp, vp, vp, vp]),
        (crypto, "EVP_MAC_CTX_set_params", ci, [vp, vp]),
    ]
    for owner, name, restype, argtypes in signatures:
        fn = getattr(owner, name)
        fn.restype, fn.argtypes = restype, argtypes
    cipher = crypto.EVP_aes_256_cbc()
    return TicketBridge(ssl_lib=lib, crypto_lib=crypto, aes_256_cbc=cipher,
                        native=_native(crypto, cipher))


def _native(crypto: Any, cipher: int) -> Any:
    """``_tickets.c`` bound to ``crypto`` (the libcrypto ``_ssl`` uses), or None where the
    extension was not built (no compiler at install time)."""
    try:
        module = importlib.import_module("gateway.tls._tickets")
    except ImportError:
        log.info("session tickets: the C extension is not built; each ticket asks Python")
        return None
    native = ctypes.CDLL(module.__file__)
    vp, ci, cd = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
    for name, restype, argtypes in [
        ("ramparts_tickets_bind", None, [vp, vp, vp, vp]),
        ("ramparts_tickets_acquire", ci, [vp]),
        ("ramparts_tickets_callback", vp, [ci]),
        ("ramparts_tickets_release", None, [ci]),
        ("ramparts_tickets_set_key", None, [ci, ctypes.c_char_p, ctypes.c_char_p,
                                             ctypes.c_char_p, cd, cd]),
    ]:
        fn = getattr(native, name)
        fn.restype, fn.argtypes = restype, argtypes
    address = ctypes.c_void_p

    def pointer(fn: Any) -> Any:
        return ctypes.cast(fn, address)

    native.ramparts_tickets_bind(pointer(crypto.RAND_bytes), pointer(crypto.EVP_EncryptInit_ex),
                                 pointer(crypto.EVP_MAC_CTX_set_params), cipher)
    return native
