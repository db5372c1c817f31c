"""A local revocation authority for tests: an OpenSSL CA directory (``index.txt``,
``openssl.cnf``) whose OCSP answers come from ``openssl ocsp`` and whose CRL comes from
``openssl ca -gencrl`` (seed 003's line), served over HTTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

OPENSSL_CNF = """[ ca ]
default_ca = local
[ local ]
database = index.txt
default_md = sha256
default_crl_days = 7
"""


class Authority:
    """The CA in ``dir`` (``ca.crt``/``ca.key``); issues leaves and records them."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        (directory / "openssl.cnf").write_text(OPENSSL_CNF)
        (directory / "index.txt").write_text("")
        self.ocsp_requests = 0
        self.lock = threading.Lock()

    def issue(self, name: str, ocsp: str | None = None, crl: str | None = None,
              revoked: bool = False) -> int:
        ca_key = load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        ca = x509.load_pem_x509_certificate((self.dir / "ca.crt").read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        serial = x509.random_serial_number()
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(ca.subject).public_key(key.public_key()).serial_number(serial)
                   .not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=30)))
        if ocsp:
            builder = builder.add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(ocsp))]), critical=False)
        if crl:
            builder = builder.add_extension(x509.CRLDistributionPoints([
                x509.DistributionPoint([x509.UniformResourceIdentifier(crl)], None, None,
                                       None)]), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        (self.dir / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.dir / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.record(serial, name, cert.not_valid_after_utc, revoked)
        return serial

    def record(self, serial: int, name: str, expires: dt.datetime, revoked: bool) -> None:
        hexed = format(serial, "X")
        hexed = "0" + hexed if len(hexed) % 2 else hexed
        when = f"{expires:%y%m%d%H%M%S}Z"
        revoked_at = f"{dt.datetime.now(dt.UTC) - dt.timedelta(hours=1):%y%m%d%H%M%S}Z"
        line = "\t".join(("R" if revoked else "V", when, revoked_at if revoked else "",
                          hexed, "unknown", f"/CN={name}"))
        with (self.dir / "index.txt").open("a") as index:
            index.write(line + "\n")

    def gencrl(self) -> None:
        """Seed 003's line, verbatim."""
        subprocess.run("openssl ca -config openssl.cnf -gencrl -keyfile ca.key -cert ca.crt "
                       "-out ca.crl", shell=True, cwd=self.dir, check=True,
                       capture_output=True)

    def answer_ocsp(self, request: bytes) -> bytes:
        with self.lock:
            self.ocsp_requests += 1
            (self.dir / "req.der").write_bytes(request)
            subprocess.run(["openssl", "ocsp", "-index", "index.txt", "-CA", "ca.crt",
                            "-rsigner", "ca.crt", "-rkey", "ca.key", "-reqin", "req.der",
                            "-respout", "resp.der", "-ndays", "1"], cwd=self.dir,
                           check=True, capture_output=True)
            return (self.dir / "resp.der").read_bytes()


@contextlib.contextmanager
def serve(authority: Authority, port: int) -> Iterator[None]:
    """OCSP on POST /ocsp, the CRL on GET /ca.crl."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.reply(authority.answer_ocsp(body), "application/ocsp-response")

        def do_GET(self) -> None:
            path = authority.dir / "ca.crl"
            if self.path != "/ca.crl" or not path.exists():
                self.send_error(404)
                return
            self.reply(path.read_bytes(), "application/pkix-crl")

        def reply(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
