"""Declarative configuration at scale (part of `make bench`, not a test).

One file: 10,000 services, each with a route, and 1,000 certificates (distinct ECDSA keys,
one SNI each). Each scenario runs in its own process, so the peak RSS is its own:
parse only; `db_import` into an empty SQLite and an empty PostgreSQL database; DB-less
start-up (the private database loaded from the file); `POST /config` of the same file into a
loaded DB-less node (the replace transaction).

Usage: python bench/declarative.py OUT.md [SERVICES] [CERTIFICATES]
(PostgreSQL: RAMPARTS_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway import registry  # noqa: E402
from gateway.db import migrate  # noqa: E402
from gateway.db.store import Store  # noqa: E402
from gateway.declarative import dbio, dbless  # noqa: E402
from gateway.declarative.parse import parse_text  # noqa: E402
from gateway.declarative.source import load_text  # noqa: E402
from gateway.settings.load import load  # noqa: E402

PG = os.environ.get("RAMPARTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
SCENARIOS = ("parse", "db_import sqlite", "db_import postgresql", "DB-less start-up",
             "POST /config")


def certificate(name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def make_file(path: Path, services: int, certs: int) -> None:
    doc: dict[str, object] = {"_format_version": "3.0", "services": [
        {"name": f"s{i}", "url": f"http://backend{i % 50}.internal:8080/v{i}",
         "routes": [{"name": f"r{i}", "paths": [f"/api/{i}"], "hosts": [f"h{i}.test"]}]}
        for i in range(services)]}
    pairs = [certificate(f"c{i}.test") for i in range(certs)]
    doc["certificates"] = [{"cert": c, "key": k, "snis": [f"c{i}.test"]}
                           for i, (c, k) in enumerate(pairs)]
    path.write_text(json.dumps(doc))


async def scenario(name: str, path: Path) -> float:
    reg = registry.build()
    text = path.read_bytes()
    if name == "parse":
        started = time.monotonic()
        parse_text(Store("sqlite://", reg), text)
        return time.monotonic() - started
    if name.startswith("db_import"):
        db = None
        if name.endswith("postgresql"):
            db = f"ramparts_bench_{secrets.token_hex(4)}"
            await _pg(f'CREATE DATABASE "{db}"')
            url = PG.rsplit("/", 1)[0] + "/" + db
        else:
            url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
        store = Store(url, reg)
        try:
            await migrate.upgrade(store.engine)
            started = time.monotonic()
            await dbio.db_import(store, parse_text(store, text))
            return time.monotonic() - started
        finally:
            await store.close()
            if db is not None:
                await _pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    settings = load(env={"RAMPARTS_DATABASE": "off", "RAMPARTS_DECLARATIVE_CONFIG": str(path)})
    started = time.monotonic()
    store = await dbless.open_store(settings, reg, None)
    try:
        if name == "DB-less start-up":
            return time.monotonic() - started
        started = time.monotonic()
        await dbless.load(store, load_text(text))
        return time.monotonic() - started
    finally:
        await store.close()


async def _pg(statement: str) -> None:
    conn = await asyncpg.connect(PG.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def child(name: str, path: str) -> None:
    seconds = asyncio.run(scenario(name, Path(path)))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_kb / 1024}))


def main() -> None:
    out = Path(sys.argv[1])
    services = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    certs = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000
    work = Path(tempfile.mkdtemp(prefix="ramparts-bench-decl-"))
    path = work / "kong.json"
    make_file(path, services, certs)
    rows = [f"# Declarative configuration: {services} services + {services} routes + "
            f"{certs} certificates ({path.stat().st_size / 1e6:.1f} MB of JSON)", "",
            "| scenario | seconds | peak RSS (MB) |", "|---|---|---|"]
    for name in SCENARIOS:
        done = subprocess.run([sys.executable, __file__, "--child", name, str(path)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            rows.append(f"| {name} | failed: {done.stderr.strip().splitlines()[-1:]} | |")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(f"| {name} | {result['seconds']:.1f} | {result['peak_rss_mb']:.0f} |")
        print(rows[-1], flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
