"""Configuration propagation and rebuild numbers (part of `make bench`, not a test).

1. Propagation: a certificate POSTed through the Admin API, then TLS handshakes with its SNI
   until it is served; p50/p99 over 100 changes, on the same node (SQLite) and on another
   node of a two-node PostgreSQL cluster (a private database, created and dropped here).
2. Many certificates (10,000 and 100,000 distinct ECDSA keys, one SNI and one route each):
   in-process, the reloader's steps cold and after one certificate changed; then a real node
   on that database: start-up, RSS (the node's processes, and its worker's alone), handshake
   CPU for one SNI against random SNIs, the first handshake of a certificate not parsed yet.

Usage: python bench/reload.py OUT.md [COUNTS] [--no-propagation]
       (COUNTS: comma-separated, default 10000,100000; "" for none; the environment's
       SSL_CONTEXT_CACHE_SIZE sets the node's LRU, 10000 by default)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
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
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway import registry  # noqa: E402
from gateway.db import migrate, tables  # noqa: E402
from gateway.db.load import load_all  # noqa: E402
from gateway.db.rowcache import RowCache  # noqa: E402
from gateway.db.store import Store  # noqa: E402
from gateway.reuse import Reuse  # noqa: E402
from gateway.snapshot import Holder, build_snapshot  # noqa: E402
from gateway.tls.contexts import ServerPolicy  # noqa: E402
from gateway.tls.defaults import generated_pairs  # noqa: E402
from gateway.tls.store import TLSTerminator  # noqa: E402
from gateway.workers.worker import settle_heap  # noqa: E402
from tests.e2e.proc import Running, free_port, launch, ready, wait_for  # noqa: E402
from tests.pki import ec_pair, ec_pairs  # noqa: E402

PG = os.environ.get("RAMPARTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ROUNDS = 100
TICK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextlib.contextmanager
def nodes(work: Path, database: str, count: int, **settings: object
          ) -> Iterator[list[tuple[Running, int]]]:
    started = []
    try:
        for i in range(count):
            d = work / f"n{i}"
            d.mkdir()
            tls = free_port()
            node = launch(d, {"database": database, "log_level": "warn",
                              "proxy_listen": f"127.0.0.1:{tls} ssl", **settings})
            started.append((node, tls))
        for node, _ in started:
            ready(node, timeout=600)
        yield started
    finally:
        for node, _ in started:
            node.stop(timeout=60)


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
    return f"CN={cn[0].value!s}" if cn else ""


def post_json(url: str, body: dict[str, object]) -> int:
    """A POST with the standard library: `make bench` installs no test extras (httpx)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def propagation(admin: str, served_by: int, rounds: int = ROUNDS) -> list[float]:
    names = [f"prop-{i}-{uuid.uuid4().hex[:6]}.test" for i in range(rounds)]
    made = [(name, *ec_pair(name)) for name in names]  # made before the clock runs
    delays = []
    for name, cert, key in made:
        status = post_json(f"{admin}/certificates", {"cert": cert, "key": key,
                                                     "snis": [name]})
        assert status == 201, status
        committed = time.monotonic()
        while served_cn(served_by, name) != f"CN={name}":
            if time.monotonic() - committed > 10:
                raise AssertionError(f"{name} not served after 10 s")
        delays.append((time.monotonic() - committed) * 1000)
    return delays


def probe_cost(port: int) -> float:
    """What one probe handshake itself takes, in ms."""
    started = time.monotonic()
    for _ in range(20):
        served_cn(port, "localhost")
    return (time.monotonic() - started) * 50


# ---------------------------------------------------------------------- many certificates
async def fill(store: Store, made: list[tuple[str, str]]) -> list[str]:
    """Bulk rows, as a restore would write them: one service, and per certificate one SNI
    and one route whose host is that SNI. Returns the certificate ids."""
    now = int(time.time())
    services, routes = store.dao("services"), store.dao("routes")
    service = services.to_row(services.values_for("insert", None, {"host": "127.0.0.1"},
                                                  None))
    ids = [str(uuid.uuid4()) for _ in made]
    async with store.write() as conn:
        await conn.execute(tables.table("services").insert(), [service])
        await conn.execute(tables.table("certificates").insert(), [
            {"id": cid, "created_at": now, "updated_at": now, "cert": c, "key": k}
            for cid, (c, k) in zip(ids, made, strict=True)])
        await conn.execute(tables.table("snis").insert(), [
            {"id": str(uuid.uuid4()), "created_at": now, "updated_at": now,
             "name": f"c{i}.test", "certificate_id": cid} for i, cid in enumerate(ids)])
        await conn.execute(tables.table("routes").insert(), [routes.to_row(routes.values_for(
            "insert", None, {"hosts": [f"c{i}.test"], "service": {"id": service["id"]}},
            None)) for i in range(len(ids))])
    return ids


async def rebuild(store: Store, ids: list[str], work: Path, changes: int = 10
                  ) -> dict[str, str]:
    """The reloader's steps (load, build, contexts) in-process: cold, then ``changes``
    single-certificate changes (p50 / max of each step)."""
    holder, rows, parts = Holder(), RowCache(), Reuse()
    tls = TLSTerminator(ServerPolicy(), generated_pairs(work / "ssl"),
                        lambda: holder.current.certs)
    loop = asyncio.get_running_loop()

    async def once() -> dict[str, float]:
        started, cpu = time.monotonic(), time.process_time()
        loaded = await load_all(store, cache=rows)
        loaded_at = time.monotonic()
        snapshot = await loop.run_in_executor(None, lambda: build_snapshot(loaded,
                                                                           reuse=parts))
        built_at = time.monotonic()
        await loop.run_in_executor(None, tls.prepare, snapshot.certs)
        done = time.monotonic()
        holder.current = snapshot
        return {"load": loaded_at - started, "build": built_at - loaded_at,
                "contexts": done - built_at, "total": done - started,
                "CPU": time.process_time() - cpu}

    cold = await once()
    settle_heap()  # as a node does once its first configuration is live
    out = {f"cold: {k}": f"{v * 1000:.0f}" for k, v in cold.items()}
    runs: list[dict[str, float]] = []
    for i in range(changes):
        cert, key = ec_pair(f"c{i}.test")  # a new key, the same name (probes still match)
        await store.dao("certificates").update(ids[i], {"cert": cert, "key": key})
        runs.append(await once())
    for k in runs[0]:
        values = [r[k] * 1000 for r in runs]
        out[f"one certificate changed: {k}"] = \
            f"{statistics.median(values):.0f} (max {max(values):.0f})"
    out["one certificate changed: rows read (count)"] = str(rows.read_rows)
    return out


def tree_of(pid: int) -> list[int]:
    """The node's process and its children (worker processes, when there are some)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children")
                         .read_text().split()]
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree_of(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree_of(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def worker_rss_mb(pid: int) -> float:
    """The largest RSS of the node's proxy worker processes (issue 13's target is per
    worker; ``rss_mb`` adds the supervisor's and the Admin API process's, ~200 MB)."""
    out = 0
    for p in tree_of(pid):
        with contextlib.suppress(OSError):
            if b"RAMPARTS_PROCESS=worker:" not in Path(f"/proc/{p}/environ").read_bytes():
                continue
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out = max(out, int(line.split()[1]))
    return out / 1024


def handshakes(port: int, names: list[str]) -> list[float]:
    """One full handshake per name, in order; each one's wall time in ms."""
    out = []
    for name in names:
        started = time.monotonic()
        served = served_cn(port, name)
        out.append((time.monotonic() - started) * 1000)
        assert served == f"CN={name}", (name, served)
    return out


def cpu_per_handshake(pid: int, port: int, names: list[str]) -> float:
    """The node's CPU per handshake (µs) over ``names`` (its clock ticks at 10 ms)."""
    before = cpu_seconds(pid)
    handshakes(port, names)
    return (cpu_seconds(pid) - before) / len(names) * 1e6


def node_figures(work: Path, database: str, count: int, lru: int) -> dict[str, str]:
    """A real node on the filled database: start-up until the first certificate is served,
    RSS, first handshakes of certificates not built yet, CPU per handshake (one SNI against
    random SNIs once every certificate is ready, or as many as the LRU holds)."""
    rng = random.Random(13)
    started = time.monotonic()
    with nodes(work, database, 1, ssl_context_cache_size=lru) as [(node, port)]:
        wait_for(lambda: served_cn(port, "c0.test") == "CN=c0.test", 600, "c0.test served")
        out = {"start until served (s)": f"{time.monotonic() - started:.1f}",
               "RSS after start, node / worker (MB)":
               f"{rss_mb(node.proc.pid):.0f} / {worker_rss_mb(node.proc.pid):.0f}"}
        pid, cold = node.proc.pid, [f"c{i}.test" for i in rng.sample(range(count), 200)]
        first = handshakes(port, cold)
        again = handshakes(port, cold)
        out["first handshake of a cold SNI, p50 / p99 (ms)"] = \
            f"{statistics.median(first):.1f} / {percentile(first, 99):.1f}"
        out["the same SNIs again, p50 / p99 (ms)"] = \
            f"{statistics.median(again):.1f} / {percentile(again, 99):.1f}"
        warm = min(count, lru)
        handshakes(port, [f"c{i}.test" for i in range(warm)])
        out[f"RSS with {warm:,} certificates served, node / worker (MB)"] = \
            f"{rss_mb(pid):.0f} / {worker_rss_mb(pid):.0f}"
        one = cpu_per_handshake(pid, port, ["c1.test"] * 2000)
        many = cpu_per_handshake(pid, port, [f"c{rng.randrange(warm)}.test"
                                             for _ in range(2000)])
        out["handshake CPU, one SNI (µs)"] = f"{one:.0f}"
        out[f"handshake CPU, random SNI among {warm:,} (µs)"] = f"{many:.0f} " \
            f"({(many / one - 1) * 100:+.0f} %)"
        if count > warm:
            beyond = cpu_per_handshake(pid, port, [f"c{rng.randrange(count)}.test"
                                                   for _ in range(2000)])
            out[f"handshake CPU, random SNI among {count:,}, LRU {warm:,} (µs)"] = \
                f"{beyond:.0f} ({(beyond / one - 1) * 100:+.0f} %)"
            out["RSS after that, node / worker (MB)"] = \
                f"{rss_mb(pid):.0f} / {worker_rss_mb(pid):.0f}"
    return out


async def many(work: Path, count: int, lru: int) -> dict[str, str]:
    made = ec_pairs(count)
    db = work / f"many-{count}.db"
    store = Store(f"sqlite:///{db}", registry.build())
    await migrate.upgrade(store.engine)
    ids = await fill(store, made)
    try:
        figures = await rebuild(store, ids, work / f"rebuild-{count}")
    finally:
        await store.close()
    (work / f"node-{count}").mkdir()
    return {**figures, **node_figures(work / f"node-{count}", f"sqlite:///{db}", count,
                                        lru)}


def propagations(work: Path) -> tuple[float, list[float], list[float]]:
    (work / "sqlite").mkdir()
    with nodes(work / "sqlite", f"sqlite:///{work}/sqlite/p.db", 1) as [(node, tls)]:
        cost = probe_cost(tls)
        one = propagation(node.admin, tls)
    name = f"ramparts_bench_{os.getpid()}"
    base = PG.rsplit("/", 1)[0]
    subprocess.run(["psql", PG, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    try:
        (work / "pg").mkdir()
        with nodes(work / "pg", f"{base}/{name}", 2) as [(node_a, _), (_, tls_b)]:
            cluster = propagation(node_a.admin, tls_b)
    finally:
        subprocess.run(["psql", PG, "-qc", f'DROP DATABASE "{name}" WITH (FORCE)'],
                       check=True)
    return cost, one, cluster


def table(count: int, lru: int, rows: dict[str, str]) -> list[str]:
    return [f"{count:,} certificates (distinct ECDSA keys), {count:,} SNIs, {count:,} routes, "
            f"`ssl_context_cache_size: {lru}`; milliseconds unless named (one certificate "
            "changed: median of 10 changes):",
            "", "| step | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows.items()),
            ""]


def main(out_path: str, counts: list[int], propagate: bool = True, lru: int = 10_000
         ) -> None:
    lines = ["## Configuration propagation and rebuild (`bench/reload.py`)", ""]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if propagate:
            cost, one, cluster = propagations(work)
            lines += [
                "POST a certificate (the clock starts when the Admin API has answered 201), "
                f"then TLS handshakes with the new SNI until the new certificate is served "
                f"({ROUNDS} changes; one probe handshake costs {cost:.1f} ms):", "",
                "| where | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|",
                *(f"| {where} | {statistics.median(v):.1f} | {percentile(v, 99):.1f} | "
                  f"{max(v):.1f} |" for where, v in (("same node (SQLite)", one),
                                                     ("other node of a two-node PostgreSQL "
                                                      "cluster", cluster))), ""]
        for count in counts:
            lines += table(count, lru, asyncio.run(many(work, count, lru)))
    Path(out_path).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    # a TERM still runs the finally blocks: the nodes stop, the PostgreSQL database is dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main(sys.argv[1], [int(c) for c in (sys.argv[2] if len(sys.argv) > 2
                                        else "10000,100000").split(",") if c],
         propagate="--no-propagation" not in sys.argv,
         lru=int(os.environ.get("SSL_CONTEXT_CACHE_SIZE", "10000")))
