"""Chain verification with OpenSSL's semantics, on the seeds' own certificates."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.plugins.mtls_auth import verify as verify_module
from gateway.plugins.mtls_auth.verify import subject_names, trust_for, verify
from tests.pki import Pki


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
          ca: bool = False, days: tuple[int, int] = (-1, 30), san: list[x509.GeneralName]
          | None = None, eku: list[x509.ObjectIdentifier] | None = None
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name(cn))
               .issuer_name(issuer[0].subject if issuer else name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + dt.timedelta(days=days[0]))
               .not_valid_after(now + dt.timedelta(days=days[1])))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


ROOT = issue("Root", None, ca=True)
INTER = issue("Intermediate", ROOT, ca=True)
OTHER = issue("Other Root", None, ca=True)


def test_seed_certificates_v1_client_verifies(pki: Pki) -> None:
    trust = trust_for([("ca3", pki.read("s003/ca.crt"))], partial=False)
    verdict = verify(trust, [pki.read("s003/client.crt")])
    assert verdict.ok, verdict.reason
    assert (verdict.anchor, verdict.names, verdict.cn) == ("ca3", ("api-client",), "api-client")
    # seed 001's client (v1, another CA) is not trusted by seed 003's CA
    assert not verify(trust, [pki.read("s001/client.crt")]).ok


@pytest.mark.parametrize(("chain", "cas", "partial", "ok"), [
    ([issue("leaf", INTER)[0], INTER[0]], [ROOT[0]], False, True),
    ([issue("leaf", INTER)[0]], [ROOT[0]], False, False),             # broken chain
    ([issue("leaf", INTER)[0]], [INTER[0]], False, False),            # intermediate anchor
    ([issue("leaf", INTER)[0]], [INTER[0]], True, True),              # ... allowed
    ([issue("leaf", ROOT, days=(-10, -1))[0]], [ROOT[0]], False, False),  # expired
    ([issue("leaf", ROOT, days=(1, 10))[0]], [ROOT[0]], False, False),    # not yet valid
    ([issue("leaf", OTHER)[0]], [ROOT[0]], False, False),             # wrong CA
    ([issue("leaf", None)[0]], [ROOT[0]], False, False),              # self-signed
    ([issue("leaf", ROOT, eku=[ExtendedKeyUsageOID.SERVER_AUTH])[0]], [ROOT[0]], False, False),
    ([issue("leaf", ROOT, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])[0]], [ROOT[0]], False, True),
])
def test_chains(chain: list[x509.Certificate], cas: list[x509.Certificate], partial: bool,
                ok: bool) -> None:
    trust = trust_for([(f"ca{i}", pem(c)) for i, c in enumerate(cas)], partial)
    verdict = verify(trust, [pem(c) for c in chain])
    assert verdict.ok is ok, verdict.reason


def test_trust_stores_are_built_once_per_ca_set() -> None:
    a = trust_for([("x", pem(ROOT[0]))], False)
    assert trust_for([("x", pem(ROOT[0]))], False) is a
    assert trust_for([("x", pem(ROOT[0]))], True) is not a
    assert trust_for([("x", pem(OTHER[0]))], False) is not a    # same id, new content


def test_subject_names_are_sans_then_cn() -> None:
    leaf, _ = issue("kongclient", ROOT, san=[x509.DNSName("example.test"),
                                             x509.RFC822Name("a@b.test")])
    assert subject_names(leaf) == (("example.test", "a@b.test", "kongclient"), "kongclient")


def test_a_chain_verified_once_is_not_verified_again_until_it_expires() -> None:
    # a new connection showing the same chain to the same trust store gets the same verdict
    # without a second verification (issue 11: at most one per new connection), but never
    # past the moment its first certificate expires
    trust = trust_for([("r", pem(ROOT[0]))], False)
    leaf = issue("leaf", INTER, days=(-1, 2))[0]
    chain = [pem(leaf), pem(INTER[0])]
    first = verify(trust, chain)
    assert first.ok and first.anchor == "r" and first.issuer == INTER[0]
    assert verify(trust, chain) is first
    expires = leaf.not_valid_after_utc.timestamp()
    assert verify(trust, chain, now=expires - 1) is first
    later = verify(trust, chain, now=expires)      # the cached verdict no longer holds
    assert later is not first and later.ok         # (OpenSSL's clock still says valid)
    other = trust_for([("r", pem(ROOT[0]))], True)  # another store verifies for itself
    assert verify(other, chain) is not later


def test_failed_chains_are_verified_each_time() -> None:
    trust = trust_for([("r", pem(ROOT[0]))], False)
    chain = [pem(issue("leaf", OTHER)[0])]
    first = verify(trust, chain)
    assert not first.ok and verify(trust, chain) is not first


def test_the_verified_chains_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "_MAX_VERIFIED", 3)
    trust = trust_for([("r", pem(ROOT[0]))], False)
    for _ in range(10):
        assert verify(trust, [pem(issue("leaf", ROOT)[0])]).ok
        assert len(verify_module.VERIFIED) <= 3
