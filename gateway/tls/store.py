"""Certificates by SNI: Kong's lookup order, and what serves them on a connection.

``CertIndex`` is pure data inside the snapshot (names -> certificate entries).
``TLSTerminator`` owns the per-process runtime: the listener context whose ``sni_callback``
picks an entry from the current index and serves it, and an LRU of what serves a certificate
keyed by content digest, shared by successive snapshots so an unchanged certificate is never
rebuilt. With the libssl bridge that is a native credential set on the connection itself
(``native.py``, ~6.5 KB); without it, one ``SSLContext`` per certificate (~19 KB) switched to.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.tls import libssl, native
from gateway.tls.contexts import ServerPolicy, server_context
from gateway.tls.native import Credential

log = logging.getLogger("ramparts.tls")


@dataclass(frozen=True, slots=True)
class CertEntry:
    id: str
    cert: str
    key: str
    cert_alt: str | None = None
    key_alt: str | None = None
    # the context cache's key, hashed once: every reload looks up every certificate's
    digest: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        for part in (self.cert, self.key, self.cert_alt or "", self.key_alt or ""):
            h.update(part.encode())
            h.update(b"\0")
        object.__setattr__(self, "digest", h.hexdigest())

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> CertEntry:
        return cls(id=row["id"], cert=row["cert"], key=row["key"],
                   cert_alt=row.get("cert_alt"), key_alt=row.get("key_alt"))

    def pairs(self) -> list[tuple[str, str]]:
        out = [(self.cert, self.key)]
        if self.cert_alt and self.key_alt:
            out.append((self.cert_alt, self.key_alt))
        return out


@dataclass(frozen=True, slots=True)
class CertIndex:
    """SNI name (lower case; wildcard names literally, e.g. ``*.b.c``) -> certificate."""

    names: Mapping[str, CertEntry]

    @classmethod
    def build(cls, snis: Iterable[tuple[str, CertEntry]]) -> CertIndex:
        return cls(MappingProxyType({name.lower().rstrip("."): e for name, e in snis}))

    def lookup(self, server_name: str | None) -> CertEntry | None:
        """Kong's order: exact, ``*.`` + all but the first label, all but the last label +
        ``.*``, then the SNI named ``*``. No SNI sent -> None (the default certificate)."""
        if not server_name:
            return None
        name = server_name.lower().rstrip(".")
        names = self.names
        entry = names.get(name)
        if entry is not None:
            return entry
        labels = name.split(".")
        if len(labels) >= 3:
            entry = names.get("*." + ".".join(labels[1:]))
            if entry is not None:
                return entry
        if len(labels) >= 2:
            entry = names.get(".".join(labels[:-1]) + ".*")
            if entry is not None:
                return entry
        return names.get("*")

    def entries(self) -> dict[str, CertEntry]:
        return {e.digest: e for e in self.names.values()}


EMPTY_INDEX = CertIndex(MappingProxyType({}))


Served = Credential | ssl.SSLContext  # what the LRU keeps per certificate


class TLSTerminator:
    """Per-process TLS runtime for the proxy listeners (one policy, one default certificate).

    ``cache_size`` (``ssl_context_cache_size``) bounds what is kept per certificate (native
    credentials, ~6.5 KB each, or contexts without the bridge, ~19 KB), least recently used
    first out; ``eager`` (``ssl_context_eager``) is how many of new certificates a reload
    builds before its swap, the rest being built inside their first handshake (a credential
    costs about a fifth of a context's ~0.5 ms)."""

    def __init__(self, policy: ServerPolicy, default_pairs: list[tuple[str, str]],
                 current_index: Callable[[], CertIndex], cache_size: int = 10_000,
                 eager: int = 1000) -> None:
        self.policy = policy
        self.current_index = current_index
        self.cache_size = cache_size
        self.eager = eager
        self._cache: OrderedDict[str, Served] = OrderedDict()
        self._known: set[str] = set()  # digests of the last prepared index
        self._lock = threading.Lock()
        self.default = server_context(policy, default_pairs)
        self.default.ramparts_cert = default_pairs[0][0]  # type: ignore[attr-defined]
        # None: per-certificate contexts; else every connection keeps the listener's
        self.native, self._default_credential = native.load(self.default, default_pairs)
        self.default.sni_callback = self._sni_callback
        # the plugins' certificate phase (global instances only): sync, in the handshake
        self.on_hello: Callable[[Any, str | None], None] | None = None
        # after the certificate is chosen: per-connection settings (mtls-auth's request)
        self.on_selected: Callable[[Any, str | None], None] | None = None
        self._client_cas: str | None = None  # the stdlib fallback's client-CA store
        # the session ticket key callback (tickets.py): C holds a raw pointer to it
        self.tickets: object | None = None

    def listener_context(self) -> ssl.SSLContext:
        return self.default

    # ------------------------------------------------------------------ per certificate
    def served_for(self, entry: CertEntry) -> Served:
        digest = entry.digest
        with self._lock:
            served = self._cache.get(digest)
            if served is not None:
                self._cache.move_to_end(digest)
                return served
        served = self._build(entry)
        with self._lock:
            self._cache[digest] = served
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)  # freed once no handshake holds it
        return served

    def _build(self, entry: CertEntry) -> Served:
        if self.native is not None:
            return self.native.credential(entry.pairs(), entry.cert)
        ctx = server_context(self.policy, entry.pairs())
        ctx.ramparts_cert = entry.cert  # type: ignore[attr-defined]
        if self._client_cas:
            ctx.load_verify_locations(cadata=self._client_cas)
        return ctx

    def request_client_certs(self, cas: str | None) -> None:
        """Without the libssl bridge (design.md §3): ask every handshake for an optional
        client certificate, verified by OpenSSL against ``cas`` (a certificate from another
        CA fails the handshake); None stops asking. Off the loop, before a swap. The
        listener decides the verify mode, each certificate's context the trust store, so
        the cached contexts are rebuilt."""
        if cas == self._client_cas or self.policy.mtls:
            return  # unchanged, or enable_mtls already decides
        with self._lock:
            self._client_cas = cas
            self._cache.clear()
            self._known = set()
        if cas:
            self.default.load_verify_locations(cadata=cas)
        self.default.verify_mode = ssl.CERT_OPTIONAL if cas else ssl.CERT_NONE

    def prepare(self, index: CertIndex, budget: float = 0.25) -> int:
        """Off the event loop, before a swap: drop what served certificates the new index no
        longer has, and build it for the certificates that are new since the previous
        index: at most ``eager`` of them (and of the cache's size), for at most ``budget``
        seconds (~0.5 ms each). Anything left is built on its first handshake, so a reload
        stays fast however many certificates there are. Returns how many were built."""
        wanted = index.entries()
        with self._lock:
            for digest in [d for d in self._cache if d not in wanted]:
                del self._cache[digest]
        new = [e for d, e in wanted.items() if d not in self._known]
        self._known = set(wanted)
        deadline = time.monotonic() + budget
        built = 0
        for entry in new[:min(self.eager, self.cache_size)]:
            if time.monotonic() > deadline:
                break
            try:
                self.served_for(entry)
                built += 1
            except (ssl.SSLError, OSError, ValueError) as exc:
                log.error("certificate %s cannot be served: %s", entry.id, exc)
        return built

    # ------------------------------------------------------------------ handshake
    def _sni_callback(self, obj: Any, server_name: str | None, initial: ssl.SSLContext
                      ) -> None:
        # sync: runs inside the handshake on the event loop; memory lookups only (a cold
        # certificate costs one context build, under a millisecond)
        obj.ramparts_sni = server_name
        if self.on_hello is not None:
            try:
                self.on_hello(obj, server_name)
            except Exception:
                log.exception("certificate phase failed for %s", server_name)
        self._select(obj, server_name, initial)
        if self.on_selected is not None:
            try:
                self.on_selected(obj, server_name)
            except Exception:
                log.exception("client certificate request failed for %s", server_name)

    def _select(self, obj: Any, server_name: str | None, initial: ssl.SSLContext) -> None:
        entry = self.current_index().lookup(server_name)
        if entry is None:
            return
        try:
            served = self.served_for(entry)  # a local reference: not freed under the install
        except (ssl.SSLError, OSError, ValueError) as exc:
            log.error("certificate %s cannot be served, using the default: %s", entry.id, exc)
            return
        if isinstance(served, Credential):
            if served.native.install(obj, served):
                obj.ramparts_cert = served.cert
            else:  # the connection has no certificate left: the default's again
                log.error("certificate %s cannot be served, using the default", entry.id)
                assert self._default_credential is not None  # set with self.native
                served.native.install(obj, self._default_credential)
        elif served is not initial:
            obj.context = served

    @property
    def cached(self) -> int:
        return len(self._cache)


def bridge_status() -> str:
    return "available" if libssl.BRIDGE is not None else f"unavailable: {libssl.UNAVAILABLE}"
