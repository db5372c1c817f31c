"""A ctypes bridge to the libssl that CPython's ``_ssl`` is linked to.

The stdlib cannot set TLS 1.3 cipher suites or a list of key-exchange groups, cannot request a
client certificate without failing the handshake on a bad one, and cannot change the verify
mode per connection. libssl can; this module reaches the ``SSL_CTX*``/``SSL*`` behind Python's
objects and calls it directly.

The pointers are read at fixed offsets inside CPython's ``PySSLContext``/``PySSLSocket``
structs (a CPython implementation detail), so the module checks itself at import: it reads
options and verify modes back through both APIs and compares. If anything differs, or libssl
is not dynamically linked, ``BRIDGE`` is None and ``UNAVAILABLE`` says why; callers then fall
back to stdlib behaviour and report what they cannot honour. It never half-works.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import ssl
from dataclasses import dataclass
from typing import Any

from gateway.tls import libssl_tickets
from gateway.tls.libssl_tickets import Decrypting, Encrypting, TicketBridge, TicketCallback

log = logging.getLogger("ramparts.tls")

SSL_VERIFY_NONE, SSL_VERIFY_PEER, SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0, 1, 2
_SSL_CTRL_SET_GROUPS_LIST = 92
_SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59
_SSL_OP_NO_TICKET = 1 << 14

_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(_preverify_ok: int, _store_ctx: int) -> int:
    # The handshake always completes; the verdict (SSL_get_verify_result) is read afterwards.
    return 1


_accept_any = _VERIFY_CB(_accept)  # module level: C holds a raw pointer to it


def _mapped_libssl() -> str:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            match = re.search(r"(/\S*libssl\.so[.\d]*)$", line.strip())
            if match:
                return match.group(1)
    raise OSError("libssl is not dynamically linked into this Python (_ssl is static)")


@dataclass(frozen=True)
class Bridge:
    """The libssl functions we use, bound once; every method takes Python objects."""

    ssl_lib: Any
    crypto_lib: Any
    head: int  # size of PyObject_HEAD: the SSL_CTX* follows it in PySSLContext
    ptr: int
    tickets: TicketBridge | None  # None: this libssl has no ticket key callback
    tickets_unavailable: str

    def ctx_ptr(self, ctx: ssl.SSLContext) -> int:
        value = ctypes.c_void_p.from_address(id(ctx) + self.head).value
        assert value is not None
        return value

    def ssl_ptr(self, obj: Any) -> int:
        """``SSL*`` of an ``ssl.SSLObject`` (PySSLSocket: HEAD, Socket*, SSL*)."""
        raw = getattr(obj, "_sslobj", obj)
        value = ctypes.c_void_p.from_address(id(raw) + self.head + self.ptr).value
        assert value is not None
        return value

    def set_ciphersuites(self, ctx: ssl.SSLContext, suites: str) -> None:
        if self.ssl_lib.SSL_CTX_set_ciphersuites(self.ctx_ptr(ctx), suites.encode()) != 1:
            raise ssl.SSLError(f"cannot set TLS 1.3 cipher suites {suites!r}")

    def set_groups(self, ctx: ssl.SSLContext, groups: str) -> None:
        rc = self.ssl_lib.SSL_CTX_ctrl(self.ctx_ptr(ctx), _SSL_CTRL_SET_GROUPS_LIST, 0,
                                       groups.encode())
        if rc != 1:
            raise ssl.SSLError(f"cannot set key exchange groups {groups!r}")

    def request_client_cert(self, ctx: ssl.SSLContext) -> None:
        """Ask every client for a certificate but never fail the handshake over it (nginx's
        ``optional_no_ca``); the application reads ``verify_result`` and decides."""
        self.ssl_lib.SSL_CTX_set_verify(self.ctx_ptr(ctx), SSL_VERIFY_PEER, _accept_any)

    def set_connection_verify(self, obj: Any, request: bool) -> None:
        """Per connection (inside the SNI callback): ask for a client certificate or not."""
        cb = ctypes.cast(_accept_any, ctypes.c_void_p) if request else None
        self.ssl_lib.SSL_set_verify(self.ssl_ptr(obj), SSL_VERIFY_PEER if request else
                                    SSL_VERIFY_NONE, cb)

    def request_optional_client_cert(self, obj: Any, ca_names: tuple[bytes, ...] = ()) -> None:
        """Per connection (inside the SNI callback): ask for a client certificate, accept any
        (mtls-auth verifies it later and answers 401), name ``ca_names`` (DER certificates)
        in the CertificateRequest, and make the session impossible to resume, so that every
        connection shows its whole chain (a resumed session keeps only the leaf)."""
        ssl_ptr = self.ssl_ptr(obj)
        lib = self.ssl_lib
        lib.SSL_set_verify(ssl_ptr, SSL_VERIFY_PEER, ctypes.cast(_accept_any, ctypes.c_void_p))
        lib.SSL_set_options(ssl_ptr, _SSL_OP_NO_TICKET)  # TLS 1.2 tickets
        lib.SSL_set_num_tickets(ssl_ptr, 0)  # TLS 1.3 tickets
        self._uncacheable_session(ssl_ptr)
        for der in ca_names:
            buf = ctypes.create_string_buffer(der, len(der))
            cursor = ctypes.c_void_p(ctypes.addressof(buf))
            cert = self.crypto_lib.d2i_X509(None, ctypes.byref(cursor), len(der))
            if cert:
                lib.SSL_add_client_CA(ssl_ptr, cert)  # copies the subject name
                self.crypto_lib.X509_free(cert)

    def _uncacheable_session(self, ssl_ptr: int) -> None:
        """TLS 1.2 session IDs: the cache lookup ran before the SNI callback, so only this
        connection's new session can be kept out of it. OpenSSL's ``ssl_update_cache`` (at
        the end of the handshake) never stores a server session without a session ID context
        while SSL_VERIFY_PEER is set; the listener's context is Python's (``Python``), so
        clearing the session's own copy keeps it out of the cache: a client offering its ID
        later gets a full handshake."""
        lib = self.ssl_lib
        if lib.SSL_session_reused(ssl_ptr):
            return  # a session from another SNI (it has no client certificate: 401 later)
        session = lib.SSL_get_session(ssl_ptr)
        if session:
            lib.SSL_SESSION_set1_id_context(session, None, 0)

    def verify_result(self, obj: Any) -> int:
        return int(self.ssl_lib.SSL_get_verify_result(self.ssl_ptr(obj)))

    def verify_error(self, code: int) -> str:
        text: bytes = self.crypto_lib.X509_verify_cert_error_string(code)
        return text.decode()

    def set_ticket_keys(self, ctx: ssl.SSLContext, keys: bytes) -> None:
        if len(keys) != 80:
            raise ValueError("session ticket keys are 80 bytes (16 name, 32 HMAC, 32 AES)")
        buf = ctypes.create_string_buffer(keys, 80)
        if self.ssl_lib.SSL_CTX_ctrl(self.ctx_ptr(ctx), _SSL_CTRL_SET_TLSEXT_TICKET_KEYS, 80,
                                     buf) != 1:
            raise ssl.SSLError("cannot set session ticket keys")

    def set_ticket_callback(self, ctx: ssl.SSLContext, encrypting: Encrypting,
                            decrypting: Decrypting, in_c: bool = True) -> TicketCallback:
        """Session tickets of every connection accepted on ``ctx`` (OpenSSL takes ticket keys
        from the context a connection started on, even after the SNI callback switched it)
        are encrypted and decrypted with the keys these functions give; ``in_c``: new
        tickets may take their key from C once ``encrypting`` gave it an interval. The
        context keeps the callback (C holds raw pointers to it) for as long as it lives."""
        if self.tickets is None:
            raise OSError(self.tickets_unavailable)
        callback = self.tickets.install(self.ctx_ptr(ctx), encrypting, decrypting, in_c)
        setattr(ctx, "_ramparts_ticket_callback", callback)  # noqa: B010 -- not a slot
        return callback

    def set_session_timeout(self, ctx: ssl.SSLContext, seconds: int) -> None:
        """How long a session (and a ticket: its lifetime hint) may be resumed."""
        self.ssl_lib.SSL_CTX_set_timeout(self.ctx_ptr(ctx), seconds)


def _bind() -> Bridge:
    path = _mapped_libssl()
    lib = ctypes.CDLL(path)  # already loaded by _ssl: dlopen returns the same handle
    crypto = ctypes.CDLL(path.replace("libssl", "libcrypto"))
    vp, ci, cl, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "SSL_CTX_get_options": (ctypes.c_uint64, [vp]),
        "SSL_CTX_get_verify_mode": (ci, [vp]),
        "SSL_CTX_ctrl": (cl, [vp, ci, cl, vp]),
        "SSL_CTX_set_ciphersuites": (ci, [vp, cp]),
        "SSL_CTX_set_verify": (None, [vp, ci, _VERIFY_CB]),
        "SSL_set_verify": (None, [vp, ci, vp]),
        "SSL_get_verify_mode": (ci, [vp]),
        "SSL_get_verify_result": (cl, [vp]),
        "SSL_get_SSL_CTX": (vp, [vp]),
        "SSL_set_options": (ctypes.c_uint64, [vp, ctypes.c_uint64]),
        "SSL_set_num_tickets": (ci, [vp, ctypes.c_size_t]),
        "SSL_add_client_CA": (ci, [vp, vp]),
        "SSL_CTX_set_timeout": (cl, [vp, cl]),
        "SSL_session_reused": (ci, [vp]),
        "SSL_get_session": (vp, [vp]),
        "SSL_SESSION_set1_id_context": (ci, [vp, vp, ctypes.c_uint]),
    }
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    crypto.X509_verify_cert_error_string.restype = cp
    crypto.X509_verify_cert_error_string.argtypes = [cl]
    crypto.d2i_X509.restype, crypto.d2i_X509.argtypes = vp, [vp, ctypes.POINTER(vp), cl]
    crypto.X509_free.restype, crypto.X509_free.argtypes = None, [vp]
    try:
        tickets, why = libssl_tickets.bind(lib, crypto), ""
    except AttributeError as exc:
        tickets, why = None, f"no session ticket key callback in this libssl ({exc})"
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    return Bridge(ssl_lib=lib, crypto_lib=crypto, head=head,
                  ptr=ctypes.sizeof(ctypes.c_void_p), tickets=tickets, tickets_unavailable=why)


def _self_check(bridge: Bridge) -> None:
    """Read state back through libssl and through Python; any mismatch disables the bridge."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.options |= ssl.OP_NO_TICKET
    pointer = bridge.ctx_ptr(ctx)
    if bridge.ssl_lib.SSL_CTX_get_options(pointer) != int(ctx.options):
        raise OSError("PySSLContext layout mismatch (options differ)")
    ctx.verify_mode = ssl.CERT_OPTIONAL
    if bridge.ssl_lib.SSL_CTX_get_verify_mode(pointer) != SSL_VERIFY_PEER:
        raise OSError("PySSLContext layout mismatch (verify mode differs)")
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    if bridge.ssl_lib.SSL_get_SSL_CTX(bridge.ssl_ptr(obj)) != pointer:
        raise OSError("PySSLSocket layout mismatch (SSL_CTX of the connection differs)")
    bridge.set_connection_verify(obj, request=False)
    if bridge.ssl_lib.SSL_get_verify_mode(bridge.ssl_ptr(obj)) != SSL_VERIFY_NONE:
        raise OSError("SSL_set_verify did not take effect")
    bridge.set_groups(ctx, "P-256:P-384")
    bridge.set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256")
    suites = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"]
    if suites != ["TLS_AES_128_GCM_SHA256"]:
        raise OSError(f"SSL_CTX_set_ciphersuites did not take effect ({suites})")


def _load() -> tuple[Bridge | None, str]:
    if os.environ.get("RAMPARTS_LIBSSL_BRIDGE", "on").lower() in ("off", "0", "false"):
        # the operator's escape hatch: behave exactly as if the self-check had failed
        return None, "disabled by RAMPARTS_LIBSSL_BRIDGE=off"
    try:
        bridge = _bind()
        _self_check(bridge)
    except (OSError, AttributeError, ssl.SSLError, AssertionError) as exc:
        return None, str(exc)
    return bridge, ""


BRIDGE, UNAVAILABLE = _load()
