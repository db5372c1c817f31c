"""Certificates set per connection (``gateway/tls/native.py``): real handshakes over memory
BIOs against the terminator's listener context, with an LRU smaller than the certificates."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import random
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from gateway.tls import libssl
from gateway.tls.contexts import ServerPolicy
from gateway.tls.defaults import generated_pairs
from gateway.tls.info import tls_info
from gateway.tls.native import CredentialError, Native
from gateway.tls.store import CertEntry, CertIndex, TLSTerminator
from tests.pki import UpstreamPki, ec_pairs, rsa_key_pem, self_signed, weak_rsa_pair

pytestmark = pytest.mark.skipif(libssl.BRIDGE is None, reason="needs the libssl bridge")

COUNT = 200
ENTRIES = [CertEntry(id=f"id{i}", cert=c, key=k) for i, (c, k) in enumerate(ec_pairs(COUNT))]
INDEX = CertIndex.build((f"c{i}.test", e) for i, e in enumerate(ENTRIES))


@pytest.fixture(scope="module")
def default_pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    return generated_pairs(Path(tmp_path_factory.mktemp("ssl")))  # RSA and ECDSA


def client(rsa_only: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if rsa_only:  # TLS 1.2 with RSA authentication only
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    return ctx


def handshake(server: ssl.SSLContext, name: str | None, peer: ssl.SSLContext | None = None
              ) -> tuple[str, ssl.SSLObject]:
    """One handshake over memory BIOs: the CN the client was served, the server's object."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = (peer or client()).wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):  # bounded: a handshake takes a few flights
        for obj in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if c.version() is not None and s.version() is not None:
            break
    der = c.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string(), s


def test_random_snis_get_their_own_certificate_with_a_smaller_lru(
        default_pairs: list[tuple[str, str]]) -> None:
    tls = TLSTerminator(ServerPolicy(), default_pairs, lambda: INDEX, cache_size=16, eager=0)
    assert tls.native is not None
    for i in random.Random(13).sample(range(COUNT), 100):
        cn, obj = handshake(tls.listener_context(), f"c{i}.test")
        assert cn == f"CN=c{i}.test"
        assert tls_info(obj)["server_cert"] == ENTRIES[i].cert
        assert tls.cached <= 16
    # the listener's context stays the connection's (nothing per certificate but its pairs)
    assert obj.context is tls.listener_context()
    cn, _ = handshake(tls.listener_context(), "c0.test")  # evicted long ago: built anew
    assert cn == "CN=c0.test"


def test_no_sni_and_unknown_sni_get_the_default(default_pairs: list[tuple[str, str]]) -> None:
    tls = TLSTerminator(ServerPolicy(), default_pairs, lambda: INDEX)
    for name in (None, "unknown.test"):
        cn, obj = handshake(tls.listener_context(), name)
        assert cn.startswith("CN=localhost") and tls_info(obj)["server_cert"] == \
            default_pairs[0][0]


def test_the_default_pairs_do_not_stay_next_to_an_sni_certificate(
        default_pairs: list[tuple[str, str]], tmp_path: Path) -> None:
    """An ECDSA-only SNI refuses an RSA-only client rather than serving it the default's RSA
    certificate; a dual certificate serves each client the key type it supports."""
    rsa_cert, rsa_key = self_signed(tmp_path, "dual", "dual.test", alg="rsa")
    ec_cert, ec_key = ENTRIES[0].cert, ENTRIES[0].key
    dual = CertEntry(id="dual", cert=rsa_cert, key=rsa_key, cert_alt=ec_cert, key_alt=ec_key)
    index = CertIndex.build([("c0.test", ENTRIES[0]), ("dual.test", dual)])
    tls = TLSTerminator(ServerPolicy(min_version="TLS12"), default_pairs, lambda: index)
    with pytest.raises(ssl.SSLError):
        handshake(tls.listener_context(), "c0.test", client(rsa_only=True))
    assert handshake(tls.listener_context(), "dual.test", client(rsa_only=True))[0] == \
        "CN=dual.test"
    assert handshake(tls.listener_context(), "dual.test")[0] == "CN=c0.test"  # ECDSA first


@pytest.mark.parametrize(("cert", "verifies"), [("depth2.chain", True), ("depth2.crt", False)])
def test_the_chain_is_sent_with_the_leaf(default_pairs: list[tuple[str, str]],
                                         upki: UpstreamPki, cert: str, verifies: bool) -> None:
    """Intermediates after the leaf in the certificate's PEM go out with it: a client that
    trusts only the root verifies the served chain (and not the leaf alone)."""
    entry = CertEntry(id="chain", cert=upki.read(cert), key=upki.read("depth2.key"))
    tls = TLSTerminator(ServerPolicy(), default_pairs,
                        lambda: CertIndex.build([("chain.test", entry)]))
    peer = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    peer.check_hostname = False
    peer.load_verify_locations(upki.path("root.crt"))
    if verifies:
        assert handshake(tls.listener_context(), "chain.test", peer)[0] == "CN=depth2"
    else:
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(tls.listener_context(), "chain.test", peer)


def test_a_certificate_libssl_refuses_falls_back_to_the_default(
        default_pairs: list[tuple[str, str]]) -> None:
    """A key too small for the security level parses, but ``SSL_use_cert_and_key`` refuses
    it inside the handshake: the connection gets the default's pairs back and completes."""
    cert, key = weak_rsa_pair()
    index = CertIndex.build([("weak.test", CertEntry(id="weak", cert=cert, key=key))])
    tls = TLSTerminator(ServerPolicy(), default_pairs, lambda: index)
    cn, obj = handshake(tls.listener_context(), "weak.test")
    assert cn.startswith("CN=localhost") and tls_info(obj)["server_cert"] == default_pairs[0][0]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _heap_in_use() -> int:
    """Bytes malloc has handed out (libssl's objects live there), whatever RSS reuses."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    gc.collect()
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def test_memory_per_credential_is_bounded_and_freed() -> None:
    """A generous bound (~6.4 KB measured for ECDSA; a context costs ~19 KB), and every
    byte back once the credentials are dropped (a leak would keep ~12 MB)."""
    assert libssl.BRIDGE is not None
    native = Native(libssl.BRIDGE)
    before = _heap_in_use()
    made = [native.credential([(e.cert, e.key)], e.cert) for e in ENTRIES * 10]
    per = (_heap_in_use() - before) / len(made)
    assert per < 10 * 1024, f"{per:.0f} bytes per credential"
    del made
    assert _heap_in_use() - before < 1024 * 1024


@pytest.mark.parametrize(("cert", "key", "reason"), [
    (ENTRIES[0].cert, ENTRIES[1].key, "the key does not match the certificate"),
    ("nonsense", ENTRIES[0].key, "no certificate in the PEM"),
    (ENTRIES[0].cert, "nonsense", "no private key in the PEM"),
])
def test_unusable_pairs_are_refused_when_built(cert: str, key: str, reason: str) -> None:
    assert libssl.BRIDGE is not None
    with pytest.raises(CredentialError, match=reason):
        Native(libssl.BRIDGE).credential([(cert, key)], cert)


def test_a_credential_is_usable_after_the_lru_dropped_it_mid_handshake(
        default_pairs: list[tuple[str, str]]) -> None:
    """The connection took references of its own: freeing the credential right after the
    install (the LRU evicting it) leaves the handshake its certificate."""
    tls = TLSTerminator(ServerPolicy(), default_pairs, lambda: INDEX, cache_size=1)
    assert tls.native is not None

    def evict(obj: object, name: str | None) -> None:
        tls.served_for(ENTRIES[1])  # after c0's install: evicts c0's credential

    tls.on_selected = evict
    cn, _ = handshake(tls.listener_context(), "c0.test")  # c0's credential evicted by c1's
    assert cn == "CN=c0.test" and tls.cached == 1


def test_rsa_keys_decode(tmp_path: Path) -> None:
    assert libssl.BRIDGE is not None
    cert, key = self_signed(tmp_path, "r", "r.test", alg="rsa")
    assert Native(libssl.BRIDGE).credential([(cert, key)], cert).pairs
    with pytest.raises(CredentialError):
        Native(libssl.BRIDGE).credential([(cert, rsa_key_pem())], cert)  # another RSA key
