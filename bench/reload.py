"""Configuration propagation and rebuild numbers (part of `make bench`, not a test).

1. A certificate POSTed through the Admin API: time until a new TLS handshake on the same node
   serves it (SQLite), and on another node of a PostgreSQL cluster.
2. 10,000 certificates (distinct ECDSA keys, one SNI each): time to load and build the
   snapshot, cold and after one certificate changed.

Usage: python bench/reload.py OUT.md   (needs the PostgreSQL of RAMPARTS_TEST_PG for part 1b)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway import registry  # noqa: E402
from gateway.db import migrate, tables  # noqa: E402
from gateway.db.load import load_all  # noqa: E402
from gateway.db.store import Store  # noqa: E402
from gateway.snapshot import Holder, build_snapshot  # noqa: E402
from gateway.tls.contexts import ServerPolicy  # noqa: E402
from gateway.tls.defaults import generated_pairs  # noqa: E402
from gateway.tls.store import TLSTerminator  # noqa: E402
from tests.e2e.proc import free_port, launch, ready  # noqa: E402

PG = os.environ.get("RAMPARTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def make_pair(cn: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


@contextlib.contextmanager
def nodes(work: Path, database: str, count: int) -> Iterator[list[tuple[str, int]]]:
    started = []
    try:
        for i in range(count):
            d = work / f"n{i}"
            d.mkdir()
            tls = free_port()
            node = launch(d, {"database": database, "log_level": "warn",
                              "proxy_listen": f"127.0.0.1:{tls} ssl"})
            started.append((node, tls))
        for node, _ in started:
            ready(node)
        yield [(n.admin, tls) for n, tls in started]
    finally:
        for node, _ in started:
            node.stop()


PROBE = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # built once: loading CAs costs ~20 ms
PROBE.check_hostname = False
PROBE.verify_mode = ssl.CERT_NONE


def served_cn(port: int, name: str) -> str:
    """One TLS handshake in-process (about a millisecond): the served certificate's CN."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = PROBE.wrap_socket(raw, server_hostname=name)
        der = tls.getpeercert(binary_form=True)
        tls.close()
    assert der is not None
    cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)
    return f"CN={cn[0].value}" if cn else ""


def post_json(url: str, body: dict[str, object]) -> int:
    """A POST with the standard library: `make bench` installs no test extras (httpx)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def propagation(admin: str, served_by: int, rounds: int = 20) -> list[float]:
    delays = []
    for i in range(rounds):
        cn = f"prop-{i}-{uuid.uuid4().hex[:6]}"
        cert, key = make_pair(cn)
        status = post_json(f"{admin}/certificates", {"cert": cert, "key": key,
                                                     "snis": [f"{cn}.test"]})
        assert status == 201, status
        committed = time.monotonic()
        while served_cn(served_by, f"{cn}.test") != f"CN={cn}":
            if time.monotonic() - committed > 5:
                raise AssertionError(f"{cn} not served after 5 s")
        delays.append((time.monotonic() - committed) * 1000)
    return delays


def probe_cost(port: int) -> float:
    """What one probe handshake itself takes, in ms."""
    started = time.monotonic()
    for _ in range(20):
        served_cn(port, "localhost")
    return (time.monotonic() - started) * 50


async def rebuild(work: Path, count: int) -> dict[str, float]:
    store = Store(f"sqlite:///{work}/many.db", registry.build())
    await migrate.upgrade(store.engine)
    now = int(time.time())
    certs, snis = [], []
    for i in range(count):
        cert, key = make_pair(f"c{i}")
        cid = str(uuid.uuid4())
        certs.append({"id": cid, "created_at": now, "updated_at": now, "cert": cert, "key": key})
        snis.append({"id": str(uuid.uuid4()), "created_at": now, "updated_at": now,
                     "name": f"c{i}.test", "certificate_id": cid})
    async with store.write() as conn:  # bulk rows, as a restore or a declarative load would
        await conn.execute(tables.table("certificates").insert(), certs)
        await conn.execute(tables.table("snis").insert(), snis)
    holder = Holder()
    tls = TLSTerminator(ServerPolicy(), generated_pairs(work / "ssl"), lambda: holder.current.certs)
    out: dict[str, float] = {}
    for label in ("cold", "one changed"):
        if label == "one changed":
            cert, key = make_pair("changed")
            await store.dao("certificates").update(certs[0]["id"], {"cert": cert, "key": key})
        started = time.monotonic()
        loaded = await load_all(store)
        loaded_at = time.monotonic()
        snapshot = await asyncio.get_running_loop().run_in_executor(None, build_snapshot, loaded)
        built_at = time.monotonic()
        contexts = await asyncio.get_running_loop().run_in_executor(None, tls.prepare,
                                                                    snapshot.certs)
        done = time.monotonic()
        holder.current = snapshot
        out[f"{label}: load"] = (loaded_at - started) * 1000
        out[f"{label}: build"] = (built_at - loaded_at) * 1000
        out[f"{label}: contexts ({contexts} built)"] = (done - built_at) * 1000
        out[f"{label}: total"] = (done - started) * 1000
    await store.close()
    return out


def main(out_path: str) -> None:
    lines = ["## Configuration propagation and rebuild (`bench/reload.py`)", ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sqlite").mkdir()
        with nodes(work / "sqlite", f"sqlite:///{work}/sqlite/p.db", 1) as [(admin, tls)]:
            cost = probe_cost(tls)
            one = propagation(admin, tls)
        name = f"ramparts_bench_{os.getpid()}"
        base = PG.rsplit("/", 1)[0]
        subprocess.run(["psql", PG, "-qc", f'CREATE DATABASE "{name}"'], check=True)
        try:
            (work / "pg").mkdir()
            with nodes(work / "pg", f"{base}/{name}", 2) as [(admin_a, _), (_, tls_b)]:
                cluster = propagation(admin_a, tls_b)
        finally:
            subprocess.run(["psql", PG, "-qc", f'DROP DATABASE "{name}" WITH (FORCE)'],
                           check=True)
        many = asyncio.run(rebuild(work, 10_000))
    lines += [
        "POST a certificate (the clock starts when the Admin API has answered 201), then "
        "TLS handshakes with the new SNI until the new certificate is served (20 rounds; "
        f"one probe handshake costs {cost:.1f} ms):", "",
        "| where | median ms | max ms |", "|---|---:|---:|",
        f"| same node (SQLite) | {statistics.median(one):.1f} | {max(one):.1f} |",
        f"| other node of a PostgreSQL cluster | {statistics.median(cluster):.1f} | "
        f"{max(cluster):.1f} |", "",
        "10,000 certificates with one SNI each (distinct ECDSA keys):", "",
        "| step | ms |", "|---|---:|",
        *(f"| {k} | {v:.0f} |" for k, v in many.items()), "",
    ]
    Path(out_path).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
