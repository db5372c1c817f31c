"""What the session ticket key callback costs per handshake (part of `make bench`, not a test).

In-memory TLS 1.3 handshakes (ECDSA P-256, memory BIOs, one process, no sockets), CPU time per
handshake: a full handshake (which encrypts two tickets) and a resumed one (which decrypts one
and encrypts a fresh one), with OpenSSL's own per-process ticket keys and with our callback
(gateway/tls/tickets.py). The difference is the callback's price.

Usage: python bench/tickets.py OUT.md
"""

from __future__ import annotations

import datetime as dt
import ssl
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.tls import tickets  # noqa: E402

ROUNDS, PER_ROUND = 9, 150


def _pair(work: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (work / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (work / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return work / "c.pem", work / "k.pem"


def _connect(server: ssl.SSLContext, client: ssl.SSLContext,
             session: ssl.SSLSession | None) -> ssl.SSLObject:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="a.test", session=session)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done: set[object] = set()
    while len(done) < 2:
        for obj in (c, s):
            try:
                obj.do_handshake()
                done.add(obj)
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    c.write(b"x")  # the tickets follow the handshake: let the client read them
    s_in.write(c_out.read())
    s.read(1)
    s.write(b"y")
    c_in.write(s_out.read())
    c.read(1)
    return c


def _round(server: ssl.SSLContext, client: ssl.SSLContext,
           session: ssl.SSLSession | None) -> float:
    start = time.process_time()
    for _ in range(PER_ROUND):
        c = _connect(server, client, session)
        if session is not None and not c.session_reused:
            raise SystemExit("the session was not resumed: the measurement is void")
    return (time.process_time() - start) / PER_ROUND * 1e6


def _compare(servers: tuple[ssl.SSLContext, ...], resumed: bool) -> list[float]:
    """Rounds alternate between the servers (a loaded machine slows both alike); the
    fastest round of each counts (the one least disturbed)."""
    runs: list[list[float]] = [[] for _ in servers]
    clients = []
    for server in servers:
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        session = _connect(server, client, None).session if resumed else None
        clients.append((client, session))
    for _ in range(ROUNDS):
        for i, server in enumerate(servers):
            runs[i].append(_round(server, *clients[i]))
    return [min(r) for r in runs]


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _pair(Path(tmp))
        own = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        own.load_cert_chain(cert, key)
        ours = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ours.load_cert_chain(cert, key)
        held = tickets.install(ours, tickets.TicketKeys(tickets.new_secret(), 3600),
                               lambda _name: False)
        if held is None:
            raise SystemExit("no libssl ticket key callback here: nothing to measure")
        rows = []
        for label, resumed in (("full handshake (2 tickets issued)", False),
                               ("resumed handshake (1 decrypted, 1 issued)", True)):
            base, cb = _compare((own, ours), resumed)
            rows.append(f"| {label} | {base:.0f} | {cb:.0f} | {cb - base:+.0f} "
                        f"({(cb - base) / base:+.1%}) |")
    text = "\n".join([
        "## Session ticket key callback: CPU per TLS 1.3 handshake (µs, in memory, "
        f"client and server in one process, fastest of {ROUNDS} alternating rounds of {PER_ROUND})",
        "",
        "| handshake | OpenSSL's own keys | our callback | difference |",
        "|---|---:|---:|---:|",
        *rows, ""])
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tickets.md"))
