"""Certificates made the way our users make them: the seeds' own ``openssl`` commands.

Seed 003 (``openssl req -new -x509`` CA, ``openssl x509 -req`` server and client, which gives
X.509 v1 certificates) and seed 001 (``-extensions client`` without ``-extfile``, also v1).
What ``openssl`` 3.0 cannot make directly (an expired CA) is made with cryptography.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Pki:
    dir: Path

    def read(self, name: str) -> str:
        return (self.dir / name).read_text()

    def path(self, name: str) -> str:
        return str(self.dir / name)


def make_seed_003(d: Path) -> None:
    """Seed 003, steps 1 to 3, exactly."""
    openssl(d, "genrsa", "-out", "ca.key", "2048")
    openssl(d, "req", "-new", "-x509", "-key", "ca.key", "-out", "ca.crt",
            "-subj", "/CN=My Test CA")
    openssl(d, "genrsa", "-out", "server.key", "2048")
    openssl(d, "req", "-new", "-key", "server.key", "-out", "server.csr",
            "-subj", "/CN=kong-server")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt")
    openssl(d, "genrsa", "-out", "client.key", "2048")
    openssl(d, "req", "-new", "-key", "client.key", "-out", "client.csr",
            "-subj", "/CN=api-client")
    openssl(d, "x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.crt")


def make_seed_001(d: Path) -> None:
    """Seed 001's mTLS example, exactly (the des3 step uses a throw-away passphrase)."""
    openssl(d, "genrsa", "-des3", "-passout", "pass:seed", "-out", "rootCA.protected.key",
            "2048")
    openssl(d, "rsa", "-in", "rootCA.protected.key", "-passin", "pass:seed",
            "-out", "rootCA.key")
    subj = "/C=US/ST=California/L=Mountain View/O=Your Organization/OU=Your Unit"
    openssl(d, "req", "-x509", "-new", "-nodes", "-key", "rootCA.key", "-sha256",
            "-days", "1024", "-out", "rootCA.pem", "-subj", f"{subj}/CN=example.com")
    for who in ("client", "server"):
        openssl(d, "genrsa", "-out", f"{who}.key", "2048")
        openssl(d, "req", "-new", "-key", f"{who}.key", "-out", f"{who}.csr",
                "-subj", f"{subj}/CN=localhost")
        openssl(d, "x509", "-req", "-in", f"{who}.csr", "-extensions", who, "-CA",
                "rootCA.pem", "-CAkey", "rootCA.key", "-CAcreateserial", "-out",
                f"{who}.crt", "-days", "500", "-sha256")


def make_extras(d: Path) -> None:
    """An ECDSA pair and an RSA pair for the same names (cert_alt), a KrakenD-style
    self-signed localhost certificate (seed 000), and a two-certificate chain."""
    openssl(d, "req", "-newkey", "rsa:2048", "-new", "-nodes", "-x509", "-days", "365",
            "-out", "cert.pem", "-keyout", "key.pem", "-subj",
            "/C=US/ST=California/L=Mountain View/O=Your Organization/OU=Your Unit/CN=localhost")
    openssl(d, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.key")
    openssl(d, "req", "-new", "-x509", "-key", "ec.key", "-out", "ec.crt", "-days", "30",
            "-subj", "/CN=ecdsa.test", "-addext", "subjectAltName=DNS:ecdsa.test")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-x509", "-days", "30",
            "-keyout", "rsa.key", "-out", "rsa.crt", "-subj", "/CN=rsa.test")
    (d / "chain.pem").write_text((d / "server.crt").read_text() + (d / "ca.crt").read_text())
    (d / "expired_ca.crt").write_text(expired_ca())


def expired_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Expired CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _expired_leaf(d: Path, issuer: str) -> str:
    """A server certificate (for localhost) whose validity ended yesterday; openssl 3.0's
    x509 command cannot backdate, so cryptography signs it with the issuer's key."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    ca_key = load_pem_private_key((d / f"{issuer}.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((d / f"{issuer}.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "expired.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=10))
            .not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def rsa_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def build(root: Path) -> Pki:
    for sub, maker in (("s003", make_seed_003), ("s001", make_seed_001)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        maker(root / sub)
    make_extras(root / "s003")
    return Pki(root)


def self_signed(d: Path, name: str, cn: str, alg: str = "rsa") -> tuple[str, str]:
    """A self-signed certificate made with openssl; returns (cert PEM, key PEM)."""
    key = ["-newkey", "rsa:2048"] if alg == "rsa" else \
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    openssl(d, "req", *key, "-nodes", "-x509", "-days", "30", "-subj", f"/CN={cn}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt")
    return (d / f"{name}.crt").read_text(), (d / f"{name}.key").read_text()


@dataclass(frozen=True)
class UpstreamPki:
    """Upstream-side certificates (all made with openssl): a root, intermediates, server
    chains with 0, 1 and 2 intermediates, a self-signed and a wrong-name certificate, another
    CA, and client certificates for the gateway under their own CA."""

    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def read(self, name: str) -> str:
        return (self.dir / name).read_text()


def _ext(d: Path, name: str, lines: list[str]) -> str:
    (d / f"{name}.ext").write_text("\n".join(lines) + "\n")
    return f"{name}.ext"


def _ca(d: Path, name: str, cn: str, issuer: str | None = None) -> None:
    openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{name}.key")
    ext = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign",
           "subjectKeyIdentifier=hash"]
    if issuer is None:
        openssl(d, "req", "-x509", "-new", "-key", f"{name}.key", "-days", "30", "-subj",
                f"/CN={cn}", "-out", f"{name}.crt", "-addext",
                "basicConstraints=critical,CA:TRUE", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign")
        return
    openssl(d, "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}", "-out",
            f"{name}.csr")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.crt", "-CAkey",
            f"{issuer}.key", "-CAcreateserial", "-days", "30", "-extfile",
            _ext(d, name, [*ext, "authorityKeyIdentifier=keyid"]), "-out", f"{name}.crt")


def _leaf(d: Path, name: str, cn: str, issuer: str, san: str, eku: str) -> None:
    openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", f"{name}.key")
    openssl(d, "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={cn}", "-out",
            f"{name}.csr")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.crt", "-CAkey",
            f"{issuer}.key", "-CAcreateserial", "-days", "30", "-extfile",
            _ext(d, name, ["basicConstraints=CA:FALSE", f"extendedKeyUsage={eku}",
                           *([f"subjectAltName={san}"] if san else [])]),
            "-out", f"{name}.crt")


def build_upstream(d: Path) -> UpstreamPki:
    d.mkdir(parents=True, exist_ok=True)
    local = "DNS:localhost,IP:127.0.0.1"
    _ca(d, "root", "Upstream Root")
    _ca(d, "int1", "Upstream Intermediate 1", "root")
    _ca(d, "int2", "Upstream Intermediate 2", "int1")
    _ca(d, "other", "Some Other CA")
    _leaf(d, "depth0", "depth0", "root", local, "serverAuth")
    _leaf(d, "depth1", "depth1", "int1", local, "serverAuth")
    _leaf(d, "depth2", "depth2", "int2", local, "serverAuth")
    _leaf(d, "wrongname", "wrongname", "root", "DNS:elsewhere.test", "serverAuth")
    _leaf(d, "othersrv", "othersrv", "other", local, "serverAuth")
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-x509", "-days", "30", "-subj", "/CN=selfsigned", "-addext",
            f"subjectAltName={local}", "-keyout", "selfsigned.key", "-out", "selfsigned.crt")
    (d / "depth1.chain").write_text((d / "depth1.crt").read_text() + (d / "int1.crt").read_text())
    (d / "depth2.chain").write_text((d / "depth2.crt").read_text() + (d / "int2.crt").read_text()
                                    + (d / "int1.crt").read_text())
    (d / "expired.crt").write_text(_expired_leaf(d, "root"))
    _ca(d, "clientca", "Gateway Clients CA")
    for who in ("gateway-svc", "gateway-svc2", "gateway-default", "gateway-upstream"):
        _leaf(d, who, who, "clientca", "", "clientAuth")
    _leaf(d, "stranger", "stranger", "other", "", "clientAuth")  # a client the upstream refuses
    return UpstreamPki(d)


def weak_rsa_pair(cn: str = "weak.test", bits: int = 1024) -> tuple[str, str]:
    """A self-signed certificate with an RSA key too small for OpenSSL's security level 2:
    every parser accepts it, ``SSL_CTX_use_certificate`` refuses it ('ee key too small')."""
    return _signed_by_itself(rsa.generate_private_key(public_exponent=65537, key_size=bits), cn)


def ec_pair(cn: str) -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate (CN and SAN ``cn``), made in-process in about a
    millisecond: thousands of certificates for the many-certificates tests and benchmark."""
    return _signed_by_itself(ec.generate_private_key(ec.SECP256R1()), cn)


def ec_pairs(count: int) -> list[tuple[str, str]]:
    """``count`` pairs from ``ec_pair(f"c{i}.test")``, cached in the temporary directory:
    10,000 take 6 to 20 s to make, the tests and the benchmark share them between runs."""
    path = Path(tempfile.gettempdir()) / "ramparts-pairs" / f"ec-{count}.json"
    with contextlib.suppress(OSError, ValueError):
        return [(c, k) for c, k in json.loads(path.read_text())]
    made = [ec_pair(f"c{i}.test") for i in range(count)]
    path.parent.mkdir(exist_ok=True)
    part = path.with_suffix(f".{os.getpid()}")
    part.write_text(json.dumps(made))
    part.replace(path)  # whole or absent, even with two sessions making them at once
    return made


def _signed_by_itself(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cn: str
                      ) -> tuple[str, str]:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def sha1_signed_pair(d: Path, cn: str = "sha1.test") -> tuple[str, str]:
    """A leaf signed with SHA-1 by its own CA (made with openssl: cryptography will not sign
    with SHA-1); OpenSSL's security level 2 refuses it: 'ca md too weak'."""
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-x509", "-days", "30", "-subj", "/CN=SHA-1 CA", "-keyout", "sha1ca.key",
            "-out", "sha1ca.crt")
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", f"/CN={cn}", "-keyout", "sha1.key", "-out", "sha1.csr")
    openssl(d, "x509", "-req", "-sha1", "-in", "sha1.csr", "-CA", "sha1ca.crt", "-CAkey",
            "sha1ca.key", "-CAcreateserial", "-days", "30", "-out", "sha1.crt")
    return (d / "sha1.crt").read_text(), (d / "sha1.key").read_text()


def make_crl(ca_cert: str, ca_key: str, serials: list[int], days: tuple[int, int] = (-1, 7)
             ) -> str:
    """A CRL (PEM) issued by the CA in ``ca_cert``/``ca_key`` (PEM) revoking ``serials``,
    valid from/to ``days`` from now."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(ca_key.encode(), None)
    ca = x509.load_pem_x509_certificate(ca_cert.encode())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
               .last_update(now + dt.timedelta(days=days[0]))
               .next_update(now + dt.timedelta(days=days[1])))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now - dt.timedelta(hours=1)).build())
    crl = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return crl.public_bytes(serialization.Encoding.PEM).decode()
