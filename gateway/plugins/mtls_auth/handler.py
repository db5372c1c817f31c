"""``mtls-auth`` access phase (kong.md §6.3): verify the connection's client chain against the
plugin's CAs, then name the consumer (credentials, then ``consumer_by``, then
``default_consumer``) or the authenticated groups (``skip_consumer_lookup``).

The chain is verified once per connection and trust store (the verdict is kept in the
connection's TLS facts). What a success does to the request (the consumer, the upstream
headers, ``client_verify``) depends on the chain, the plugin's config and the snapshot only
(``CONNECTION_SCOPED``: the runtime replays it on the connection's next requests), unless
revocation is answered by a cache or a CRL that ages (``kong.varies()``).
Failure details go to the log and ``kong.ctx["client_verify"]``, never to the client.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway import version
from gateway.plugins.directory import EMPTY_DIRECTORY, Directory
from gateway.plugins.mtls_auth import revocation
from gateway.plugins.mtls_auth.dirname import lookup_names
from gateway.plugins.mtls_auth.verify import Trust, Verdict, trust_for, verify
from gateway.plugins.pdk import Consumer, Kong
from gateway.plugins.runtime import Handler

log = logging.getLogger("ramparts.plugins.mtls-auth")

NO_CERT = "No required TLS certificate was sent"
FAILED = "TLS certificate failed verification"
CERT_HEADERS = ("X-Client-Cert-DN", "X-Client-Cert-SAN")
FORWARD_HEADERS = ("X-Client-Cert", "X-Client-Cert-Fingerprint", "X-Client-Cert-Serial",
                   "X-Client-Cert-Not-Before", "X-Client-Cert-Not-After")
STRIPPED = frozenset(n.lower().encode() for n in (*CERT_HEADERS, *FORWARD_HEADERS))
CONSUMER_HEADERS = ("X-Consumer-ID", "X-Consumer-Custom-ID", "X-Consumer-Username",
                    "X-Credential-Identifier", "X-Anonymous-Consumer")


class Failure(Exception):
    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # for the log: NONE or FAILED:<reason>


class MtlsAuthHandler(Handler):
    name = "mtls-auth"
    PRIORITY = 1600
    VERSION = version.__version__
    CONNECTION_SCOPED = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.ca_ids = tuple(config["ca_certificates"])
        self.partial = bool(config.get("allow_partial_chain"))
        self.pins = frozenset(config.get("pinned_certificates") or ())
        self.dirname_matcher = frozenset(config.get("san_dirname_matcher") or ())
        mode = config.get("revocation_check_mode") or "IGNORE_CA_ERROR"
        self.strict = mode == "STRICT"
        self.revocation = None if mode == "SKIP" else revocation.Options.of(config)
        self.consumer_by = tuple(config.get("consumer_by") or ())
        self.anonymous = config.get("anonymous")  # read per request: looked up once here
        self.forward = bool(config.get("forward_client_cert"))
        self._known_trust: tuple[Directory, Trust] | None = None

    def access(self, kong: Kong) -> Awaitable[None] | None:
        """Synchronous unless a revocation answer has to be fetched."""
        _strip(kong)
        if self.anonymous and kong.client.credential is not None:
            return None  # an earlier auth plugin already authenticated (logical OR)
        db = kong.db or EMPTY_DIRECTORY
        try:
            verdict = self._verdict(kong, db)
            if self.revocation is None:
                self._finish(kong, db, verdict, stable=True)
                return None
            status, pending, stable = self._revocation(db, verdict)
        except Failure as failure:
            self._failed(kong, db, failure)
            return None
        if pending is None:
            self._revocation_then_finish(kong, db, verdict, status, stable)
            return None
        return self._fetched_then_finish(kong, db, verdict, pending)

    def _finish(self, kong: Kong, db: Directory, verdict: Verdict, stable: bool) -> None:
        """``stable``: the revocation answer holds for the connection's life."""
        try:
            self._identify(kong, db, verdict)
        except Failure as failure:
            self._failed(kong, db, failure)
            return
        kong.ctx["client_verify"] = "SUCCESS"
        if self.forward and verdict.leaf is not None:
            _forward(kong, verdict.leaf)
        if not stable:
            kong.varies()

    def _failed(self, kong: Kong, db: Directory, failure: Failure) -> None:
        kong.ctx["client_verify"] = failure.detail
        log.info("[mtls-auth] %s (%s)", failure.message, failure.detail)
        self._fail(kong, db, failure.message)

    # ------------------------------------------------------------------ revocation
    def _revocation(self, db: Directory, verdict: Verdict
                    ) -> tuple[str, Coroutine[Any, Any, str] | None, bool]:
        """The answer when it is known without I/O, else the fetch to await; and whether
        the answer holds for the connection's life (no cache entry or CRL that ages)."""
        leaf, issuer = verdict.leaf, verdict.issuer
        if leaf is None or issuer is None:
            return revocation.UNKNOWN, None, True  # the leaf is itself a trust anchor
        uploaded = db.crls.get(verdict.issuer_ca) if verdict.issuer_ca else None
        if uploaded is not None and uploaded.revoked(leaf.serial_number):
            return revocation.REVOKED, None, False
        key = verdict.revocation_key
        cached = revocation.CHECKER.cached(key)
        if cached is not None:
            return cached, None, False
        if not verdict.revocation_sources:
            fresh = uploaded is not None and uploaded.fresh()
            return (revocation.GOOD if fresh else revocation.UNKNOWN), None, uploaded is None
        assert self.revocation is not None
        return revocation.UNKNOWN, revocation.CHECKER.status(key, leaf, issuer,
                                                             self.revocation), False

    async def _fetched_then_finish(self, kong: Kong, db: Directory, verdict: Verdict,
                                   pending: Coroutine[Any, Any, str]) -> None:
        status = await pending
        if status == revocation.UNKNOWN and verdict.issuer_ca:
            uploaded = db.crls.get(verdict.issuer_ca)
            if uploaded is not None and uploaded.fresh():
                status = revocation.GOOD  # the uploaded CRL is an answer too
        self._revocation_then_finish(kong, db, verdict, status, stable=False)

    def _revocation_then_finish(self, kong: Kong, db: Directory, verdict: Verdict,
                                status: str, stable: bool) -> None:
        if status == revocation.REVOKED:
            self._failed(kong, db, Failure(FAILED, "FAILED:certificate revoked"))
        elif status == revocation.UNKNOWN and self.strict:
            # Kong's STRICT: a status that cannot be checked counts as revoked
            self._failed(kong, db, Failure(FAILED, "FAILED:revocation status unknown"))
        else:
            if status == revocation.UNKNOWN:
                log.info("[mtls-auth] cannot check revocation of %s; IGNORE_CA_ERROR",
                         verdict.dn)
            self._finish(kong, db, verdict, stable)

    # ------------------------------------------------------------------ verification
    def _trust(self, kong: Kong, db: Directory) -> Trust:
        # a handler lives with one snapshot, whose directory every request sees: the trust
        # store is looked up once, not hashed per request
        known = self._known_trust
        if known is not None and known[0] is db:
            return known[1]
        cas = []
        for ca_id in self.ca_ids:
            pem = db.ca_certificates.get(ca_id)
            if pem is None:
                log.error("[mtls-auth] CA certificate %s does not exist", ca_id)
                raise kong.response.exit(500, {"message": "An unexpected error occurred"})
            cas.append((ca_id, pem))
        trust = trust_for(cas, self.partial)
        self._known_trust = (db, trust)
        return trust

    def _verdict(self, kong: Kong, db: Directory) -> Verdict:
        tls = kong.client.tls
        chain = tls.get("client_cert_chain") if tls else None
        if not tls or not chain:
            raise Failure(NO_CERT, "NONE")
        trust = self._trust(kong, db)
        verdicts: dict[Trust, Verdict] = tls.get("verdicts", {})  # one per connection
        verdict = verdicts.get(trust)
        if verdict is None:
            verdict = verdicts[trust] = verify(trust, chain)
        if not verdict.ok:
            raise Failure(FAILED, f"FAILED:{verdict.reason}")
        if self.pins and verdict.leaf is not None and pin_of(verdict.leaf) not in self.pins:
            raise Failure(FAILED, "FAILED:certificate is not pinned")
        return verdict

    # ------------------------------------------------------------------ identity
    def _identify(self, kong: Kong, db: Directory, verdict: Verdict) -> None:
        if self.config.get("skip_consumer_lookup"):
            by = self.config.get("authenticated_group_by")
            if by == "CN":
                if verdict.cn is None:
                    raise Failure("Certificate missing Common Name", "FAILED:no CN")
                kong.ctx["authenticated_groups"] = [verdict.cn]
            elif by == "DN":
                kong.ctx["authenticated_groups"] = [verdict.dn]
            _cert_headers(kong, verdict)
            return
        consumer = self._lookup(db, verdict)
        if consumer is None:
            default = self.config.get("default_consumer")
            if not default:
                raise Failure(FAILED, "FAILED:consumer not found")
            consumer = db.consumer(default)
            if consumer is None:
                raise kong.response.exit(401, {"message": "Unauthorized"})
            _cert_headers(kong, verdict)
        kong.client.authenticate(consumer, {"id": consumer.id})
        _consumer_headers(kong, consumer, anonymous=False)

    def _lookup(self, db: Directory, verdict: Verdict) -> Consumer | None:
        creds = db.mtls_credentials
        names = verdict.names
        if verdict.san_parts:  # a DirectoryName in the SAN: san_dirname_matcher picks
            names = lookup_names(verdict.san_parts, verdict.cn, self.dirname_matcher)
        for name in names:
            for ca in (verdict.anchor, None):
                cid = creds.get((name, ca))
                if cid is not None and cid in db.consumers:
                    return db.consumers[cid]
        for name in names:
            for field in self.consumer_by:
                index = db.by_username if field == "username" else db.by_custom_id
                if name in index:
                    return index[name]
        return None

    def _fail(self, kong: Kong, db: Directory, message: str) -> None:
        anonymous = self.config.get("anonymous")
        if not anonymous:
            raise kong.response.exit(401, {"message": message})
        consumer = db.consumer(anonymous)
        if consumer is None:
            raise kong.response.exit(500, {"message": f"anonymous consumer {anonymous} is "
                                                      "configured but doesn't exist"})
        kong.client.authenticate(consumer, None)
        _consumer_headers(kong, consumer, anonymous=True)


_CONSUMER_KEYS = tuple(n.lower().encode() for n in CONSUMER_HEADERS)


def _strip(kong: Kong) -> None:
    """Client copies of the certificate headers never reach the upstream."""
    request = kong.service_request
    request.cleared.update(STRIPPED)
    if request.set_headers:
        for name in STRIPPED:
            request.set_headers.pop(name, None)


def _consumer_headers(kong: Kong, consumer: Consumer, anonymous: bool) -> None:
    # per request: the header names are encoded once, here at import, not per call
    request = kong.service_request
    values = (consumer.id, consumer.custom_id, consumer.username, None,
              "true" if anonymous else None)  # CONSUMER_HEADERS' order; no credential id
    for key, value in zip(_CONSUMER_KEYS, values, strict=True):
        if value:
            request.set_headers[key] = value.encode("latin-1")
            request.cleared.discard(key)
        else:
            request.set_headers.pop(key, None)
            request.cleared.add(key)


def _cert_headers(kong: Kong, verdict: Verdict) -> None:
    kong.service_request.set_header("X-Client-Cert-DN", verdict.dn)
    kong.service_request.set_header("X-Client-Cert-SAN", ",".join(verdict.names))


def pin_of(cert: x509.Certificate) -> str:
    """curl's ``--pinnedpubkey`` form of a certificate's public key."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _forward(kong: Kong, leaf: x509.Certificate) -> None:
    """nginx's ``$ssl_client_escaped_cert`` (URL-encoded PEM), fingerprint, serial, validity."""
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
    der = leaf.public_bytes(serialization.Encoding.DER)
    request = kong.service_request
    request.set_header("X-Client-Cert", quote(pem, safe=""))
    request.set_header("X-Client-Cert-Fingerprint", hashlib.sha256(der).hexdigest())
    request.set_header("X-Client-Cert-Serial", format(leaf.serial_number, "X"))
    request.set_header("X-Client-Cert-Not-Before", _when(leaf.not_valid_before_utc))
    request.set_header("X-Client-Cert-Not-After", _when(leaf.not_valid_after_utc))


def _when(moment: Any) -> str:
    # nginx's $ssl_client_v_start form: "Dec  6 05:21:21 2026 GMT"
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"
