"""Benchmark scenarios the shared harness lacks; `make bench` runs this after the harness.

    python bench/extra.py OUT_DIR      # root, after ../shared/bench/setup.sh (nginx, wrk, shim)

Writes OUT_DIR/extra.md (bench/publish.py puts it into docs/benchmarks.md), OUT_DIR/extra.tsv
and each wrk output. Same layout as the harness: the proxy pinned to CPU 0, wrk and the nginx
origin on CPU 1, every proxy in the same run as its nginx reference, the proxy's CPU µs per
request from its process group's CPU time (the figure other tenants move least).

Scenarios (SCENARIOS="keepalive mtls routes plugins workers idle groups"; DUR=6 WARM=1
CONNS=50 ROUNDS=3). The
proxies of one comparison run at once and are measured in ROUNDS interleaved rounds; the run
with the median CPU per request stands (a shared machine's load then hits each alike):
  keepalive the harness's keep-alive scenarios a (HTTPS, plain origin), c (client
           certificate required by the listener) and d (HTTPS origin requiring a client
           certificate) for ramparts, set up as bench/gateway.sh sets it up, and leanref, in
           interleaved rounds: issue 10's bound (1.4x leanref's CPU) on a noisy machine, where
           the harness measures each once
  mtls     mtls-auth on the route (seed 003 style: a CA certificate, a consumer credential)
           against the same node without it, keep-alive and a new connection per request;
           nginx `ssl_verify_client optional` (401 unless SUCCESS) and leanref's mTLS port
           beside them; one chain verification measured in-process (pyOpenSSL) to compare
  routes   1,000 prefix routes (the request hits one of the last) against one route;
           nginx with 1,000 locations against one
  plugins  three no-op plugins (bench/plugins/ramparts_plugins/noop*) against none
  workers  `ramparts start --workers 1|2` against nginx `worker_processes 1|2`, unpinned
  idle     memory per idle keep-alive TLS connection: bench/idle.py, for ramparts and nginx
  groups   a new connection per request with ramparts' default key exchange groups (P-256,
           P-384, P-521: wrk's X25519-only key share gets a HelloRetryRequest) against the
           X25519-first order bench/gateway.sh gives the harness
A scenario whose prerequisite is missing (a plugin, a command option) says so and is skipped.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kongyml import (
    base_config,
    client_cert_config,
    mtls_config,
    noop_config,
    routes_config,
)
from meter import (
    Layout,
    Load,
    Procs,
    Result,
    cell,
    free_port,
    measure,
    median_run,
    other_load_pct,
    parse_idle,
    pct_over,
    serving_pid,
    steady_us,
    table,
    wait_port,
)
from nginxconf import locations, origin_conf, pass_all, proxy_conf, server, verify_client

REPO = Path(__file__).resolve().parents[1]
RAMPARTS = REPO / ".venv" / "bin" / "ramparts"
PLUGINS = REPO / "bench" / "plugins"
CLOSE = ("-H", "Connection: close")


class Unavailable(Exception):
    """A proxy did not come up; the scenario reports it instead of a number."""


@dataclass
class Bench:
    lay: Layout
    procs: Procs
    run: Path
    out: Path
    pki: Path
    origin_port: int = 0
    origin_tls_port: int = 0  # HTTPS, a client certificate required
    origin_pgid: int = 0
    results: list[Result] = field(default_factory=list)

    @property
    def cert_env(self) -> tuple[tuple[str, str], ...]:
        return (("WRK_CLIENT_CERT", str(self.pki / "client.crt")),
                ("WRK_CLIENT_KEY", str(self.pki / "client.key")), ("WRK_TLS_RESUME", "0"))

    def keepalive(self, port: int, path: str = "/", threads: int = 1,
                  cpus: str | None = None) -> Load:
        """Keep-alive HTTPS; the client certificate is sent when the server asks for one."""
        return Load(f"https://localhost:{port}{path}", self.cert_env, (), threads, cpus)

    def new_conn(self, port: int, path: str = "/", threads: int = 1,
                 cpus: str | None = None) -> Load:
        """A new connection and a full handshake per request (the shim drops sessions)."""
        return Load(f"https://localhost:{port}{path}", self.cert_env, CLOSE, threads, cpus)

    def measure(self, label: str, load: Load, proc: subprocess.Popen[bytes]) -> Result:
        r = measure(self.lay, label, load, proc.pid, self.out, self.origin_pgid)
        self.results.append(r)
        print(f"[{time.strftime('%H:%M:%S')}] {label}: {cell(r)} proxy {r.proxy_pct:.0f}% "
              f"other {r.other_pct:.0f}%", file=sys.stderr, flush=True)
        return r


# ---------------------------------------------------------------- proxies


def curl_ok(port: int, path: str, pki: Path, timeout: float = 30) -> bool:
    """200 through the proxy (a client certificate presented), within `timeout`."""
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
           "--cacert", str(pki / "ca.crt"), "--resolve", f"localhost:{port}:127.0.0.1",
           "--cert", str(pki / "client.crt"), "--key", str(pki / "client.key"),
           f"https://localhost:{port}{path}"]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if subprocess.run(cmd, capture_output=True, text=True).stdout == "200":
            return True
        time.sleep(0.2)
    return False


def start_nginx(b: Bench, name: str, conf: str, ports: Sequence[int], cpus: str
                ) -> subprocess.Popen[bytes]:
    path = b.run / f"{name}.conf"
    path.write_text(conf)
    proc = b.procs.start(name, cpus, ["nginx", "-p", f"{b.run}/", "-e",
                                      str(b.run / f"{name}.error.log"), "-c", str(path)])
    if not all(wait_port(p, 15, proc) for p in ports):
        b.procs.stop(proc)
        raise Unavailable(f"{name} did not start: {_tail(b.run / f'{name}.log')}")
    return proc


def start_ramparts(b: Bench, name: str, kong: dict[str, object], cpus: str,
                   settings: Mapping[str, object] | None = None, args: Sequence[str] = (),
                   check: str = "/") -> tuple[subprocess.Popen[bytes], int]:
    """A node on its own SQLite database, configured with `config db_import` (kong.yml)."""
    work = b.run / name
    work.mkdir()
    port = free_port()
    conf = work / "ramparts.yaml"
    conf.write_text(json.dumps({
        "database": f"sqlite:///{work}/bench.db", "admin_listen": f"127.0.0.1:{free_port()}",
        "proxy_listen": f"127.0.0.1:{port} ssl reuseport backlog=4096",
        "ssl_cert": str(b.pki / "server.crt"), "ssl_cert_key": str(b.pki / "server.key"),
        "prefix": str(work / "prefix"), "log_level": "warn", **(settings or {})}))
    (work / "kong.yml").write_text(json.dumps(kong))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAMPARTS_")}
    for step in (["migrations", "up"], ["config", "db_import", str(work / "kong.yml")]):
        done = subprocess.run([str(RAMPARTS), step[0], step[1], "-c", str(conf), *step[2:]],
                              env=env, capture_output=True, text=True, cwd=work, check=False)
        if done.returncode:
            raise Unavailable(f"{name}: `ramparts {' '.join(step[:2])}` failed: "
                              f"{(done.stdout + done.stderr).strip()[-400:]}")
    proc = b.procs.start(name, cpus, [str(RAMPARTS), "start", "-c", str(conf), *args],
                         env=env, cwd=work)
    if not (wait_port(port, 60, proc) and curl_ok(port, check, b.pki)):
        b.procs.stop(proc)
        raise Unavailable(f"{name} did not serve 200: {_tail(b.run / f'{name}.log')}")
    return proc, port


def start_leanref(b: Bench) -> tuple[subprocess.Popen[bytes], int, int]:
    tls, mtls = free_port(), free_port()
    env = {**os.environ, "GW_HOST": "127.0.0.1", "GW_TLS_PORT": str(tls),
           "GW_MTLS_PORT": str(mtls), "GW_CERT": str(b.pki / "server.crt"),
           "GW_KEY": str(b.pki / "server.key"), "GW_CA": str(b.pki / "ca.crt"),
           "GW_CLIENT_CA": str(b.pki / "ca.crt"),
           "GW_UPSTREAM_HTTP": f"http://127.0.0.1:{b.origin_port}",
           "GW_UPSTREAM_HTTPS": f"https://127.0.0.1:{b.origin_tls_port}",
           "GW_UPSTREAM_TLS_NAME": "localhost",
           "GW_UPSTREAM_CLIENT_CERT": str(b.pki / "client.crt"),
           "GW_UPSTREAM_CLIENT_KEY": str(b.pki / "client.key")}
    python = Path(os.environ.get("PYVENV", "/tmp/benchvenv")) / "bin" / "python"
    proc = b.procs.start("leanref", b.lay.proxy_cpu,
                         [str(python), str(b.lay.bench_dir / "proxies" / "leanref.py")], env=env)
    if not (wait_port(tls, 15, proc) and wait_port(mtls, 5, proc)):
        b.procs.stop(proc)
        raise Unavailable(f"leanref did not start: {_tail(b.run / 'leanref.log')}")
    return proc, tls, mtls


def _tail(path: Path) -> str:
    try:
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-3:])
    except OSError:
        return "(no log)"


Started = tuple[subprocess.Popen[bytes], list[tuple[str, Load]]]


@dataclass
class Fleet:
    """The proxies of one comparison, all running at once (idle ones cost next to nothing),
    measured in interleaved rounds: a change in other tenants' load then hits every target
    alike, and the run with the median CPU per request stands for each."""

    b: Bench
    notes: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    targets: list[tuple[str, subprocess.Popen[bytes], Load]] = field(default_factory=list)

    def add(self, start: Callable[[], Started]) -> None:
        try:
            proc, loads = start()
        except Unavailable as exc:
            self.notes.append(str(exc))
            return
        self.procs.append(proc)
        self.targets += [(label, proc, load) for label, load in loads]

    def measure(self) -> dict[str, Result]:
        runs: dict[str, list[Result]] = {}
        for i in range(self.b.lay.rounds):
            for label, proc, load in self.targets:
                runs.setdefault(label, []).append(self.b.measure(f"{label}.{i + 1}", load, proc))
        return {label: median_run(rs) for label, rs in runs.items()}


@contextmanager
def fleet(b: Bench) -> Iterator[Fleet]:
    f = Fleet(b)
    try:
        yield f
    finally:
        for proc in f.procs:
            b.procs.stop(proc)


# ---------------------------------------------------------------- scenario: keep-alive
# bench/gateway.sh's settings: the access log off and X25519 first, as the harness runs it
HARNESS_SETTINGS = {"proxy_access_log": "off", "tls": {"curve_preferences": [29, 23, 24, 25]}}


def scenario_keepalive(b: Bench) -> str:
    cpu, pki = b.lay.proxy_cpu, b.pki
    mtls = {**HARNESS_SETTINGS, "tls": {**HARNESS_SETTINGS["tls"], "enable_mtls": True,
                                        "ca_certs": [str(pki / "ca.crt")],
                                        "disable_system_ca_pool": True}}
    tls_doc = client_cert_config(b.origin_tls_port, (pki / "ca.crt").read_text(),
                                 str(uuid.uuid4()), (pki / "client.crt").read_text(),
                                 (pki / "client.key").read_text(), str(uuid.uuid4()))

    def leanref() -> Started:
        proc, tls, mtls_port = start_leanref(b)
        return proc, [("leanref-a", b.keepalive(tls)), ("leanref-c", b.keepalive(mtls_port)),
                      ("leanref-d", b.keepalive(tls, "/tls/"))]

    def ramparts(scenario: str, doc: dict[str, object], settings: Mapping[str, object]
                 ) -> Started:
        proc, port = start_ramparts(b, f"ramparts-ka-{scenario}", doc, cpu, settings)
        return proc, [(f"ramparts-{scenario}", b.keepalive(port))]

    with fleet(b) as f:
        f.add(leanref)
        f.add(lambda: ramparts("a", base_config(b.origin_port), HARNESS_SETTINGS))
        f.add(lambda: ramparts("c", base_config(b.origin_port), mtls))
        f.add(lambda: ramparts("d", tls_doc, HARNESS_SETTINGS))
        got = f.measure()
    return _keepalive_md(got, b.results, b.lay.rounds, f.notes)


_KEEPALIVE_WHAT = {"a": "HTTPS, plain HTTP origin", "c": "client certificate at the listener",
                   "d": "HTTPS origin requiring a client certificate"}


def _keepalive_md(got: Mapping[str, Result], results: Sequence[Result], rounds: int,
                  notes: list[str]) -> str:
    by_label = {r.label: r for r in results}
    rows = []
    for scenario, what in _KEEPALIVE_WHAT.items():
        lean, ours = got.get(f"leanref-{scenario}"), got.get(f"ramparts-{scenario}")
        ratio = f"{ours.us_per_req / lean.us_per_req:.2f}x" if lean and ours and \
            lean.ok and ours.ok else "?"
        per_round = []
        for i in range(1, rounds + 1):
            lr = by_label.get(f"leanref-{scenario}.{i}")
            rr = by_label.get(f"ramparts-{scenario}.{i}")
            per_round.append(f"{rr.us_per_req / lr.us_per_req:.2f}" if lr and rr and lr.ok
                             and rr.ok and lr.us_per_req > 0 else "?")
        rows.append([f"{scenario}: {what}", cell(lean), cell(ours), ratio,
                     " / ".join(per_round)])
    return "\n".join([
        "## Keep-alive against leanref in interleaved rounds (issue 10): proxy CPU µs per "
        "request", "",
        "The harness's keep-alive scenarios a, c and d, each proxy measured once per round "
        f"in {rounds} interleaved rounds (the median run shown): a shared machine's load then "
        "hits both alike. ramparts runs as bench/gateway.sh runs it (access log off, X25519 "
        "first). Target: at most 1.4x leanref's CPU per request.", "",
        table(["scenario", "leanref", "ramparts", "ramparts ÷ leanref (medians)",
               "ratio in each round"], rows),
        *(f"- {n}" for n in notes)])


# ---------------------------------------------------------------- scenario: mtls-auth


def verification_cost(pki: Path, cpu: str, n: int = 2000) -> tuple[float, float, float]:
    """CPU µs of one chain verification on the proxy CPU: pyOpenSSL's X509StoreContext
    alone, mtls-auth's per-connection verdict (`verify.verify`: parse, verify, names) on a
    chain its trust store has not seen, and on one it verified before (a later connection
    with the same certificate)."""
    sys.path.insert(0, str(REPO))
    from OpenSSL import crypto

    from gateway.plugins.mtls_auth import verify

    ca_pem, leaf_pem = (pki / "ca.crt").read_text(), (pki / "client.crt").read_text()
    store = crypto.X509Store()
    store.add_cert(crypto.load_certificate(crypto.FILETYPE_PEM, ca_pem.encode()))
    leaf = crypto.load_certificate(crypto.FILETYPE_PEM, leaf_pem.encode())
    trust = verify.trust_for([("ca", ca_pem)], False)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(cpu)})
    try:
        def cost(step: Callable[[], object]) -> float:
            step()
            t0 = time.process_time()
            for _ in range(n):
                step()
            return 1e6 * (time.process_time() - t0) / n
        bare = cost(lambda: crypto.X509StoreContext(store, leaf).verify_certificate())
        def unseen() -> object:
            verify.VERIFIED.clear()
            return verify.verify(trust, [leaf_pem])
        ours = cost(unseen)
        seen = cost(lambda: verify.verify(trust, [leaf_pem]))
    finally:
        os.sched_setaffinity(0, before)
    return bare, ours, seen


def scenario_mtls(b: Bench) -> str:
    cpu, ca_id = b.lay.proxy_cpu, str(uuid.uuid4())
    mtls = mtls_config(b.origin_port, (b.pki / "ca.crt").read_text(), ca_id, "bench-client")

    def pair(name: str, port: int) -> list[tuple[str, Load]]:
        return [(f"{name}-ka", b.keepalive(port)), (f"{name}-new", b.new_conn(port))]

    def nginx() -> Started:
        plain, verified = free_port(), free_port()
        conf = proxy_conf(b.run, "nginx-mtls", b.origin_port, [
            server(plain, b.pki, pass_all()),
            server(verified, b.pki, verify_client(b.pki / "ca.crt"))])
        proc = start_nginx(b, "nginx-mtls", conf, [plain, verified], cpu)
        return proc, pair("nginx-plain", plain) + pair("nginx-verify", verified)

    def leanref() -> Started:
        proc, tls, mtls_port = start_leanref(b)
        return proc, pair("leanref-plain", tls) + pair("leanref-verify", mtls_port)

    def ramparts(name: str, kong: dict[str, object]) -> Started:
        proc, port = start_ramparts(b, f"ramparts-{name}", kong, cpu)
        return proc, pair(f"ramparts-{name}", port)

    with fleet(b) as f:
        f.add(nginx)
        f.add(leanref)
        f.add(lambda: ramparts("plain", base_config(b.origin_port)))
        f.add(lambda: ramparts("verify", mtls))
        got = f.measure()
    rows = {name: [got.get(f"{name}-{v}-{k}") for v in ("plain", "verify") for k in ("ka", "new")]
            for name in ("nginx", "leanref", "ramparts")}
    return _mtls_md(rows, verification_cost(b.pki, cpu), f.notes)


_MTLS_HOW = {
    "nginx": "`ssl_verify_client optional; ssl_client_certificate ca` (401 unless SUCCESS)",
    "leanref": "its mTLS port (client certificate required in the handshake)",
    "ramparts": "mtls-auth on the route (CA certificate, consumer credential `bench-client`)",
}


def _mtls_md(rows: dict[str, list[Result | None]], costs: tuple[float, float, float],
             notes: list[str]) -> str:
    bare, ours, seen = costs
    out = []
    for name, (ka0, new0, ka1, new1) in rows.items():
        ka = "?"
        if ka0 and ka1 and new0 and new1:
            ka = (f"{pct_over(ka1.us_per_req, ka0.us_per_req)} "
                  f"({pct_over(steady_us(ka1, new1), steady_us(ka0, new0))} steady)")
        new = f"{new1.us_per_req - new0.us_per_req:+.0f} µs" if new1 and new0 else "?"
        out.append([f"{name}: {_MTLS_HOW[name]}", cell(ka0), cell(ka1), ka, cell(new0),
                    cell(new1), new])
    head = ["proxy (client authentication)", "keep-alive, none", "keep-alive, verified",
            "overhead", "new conn/req, none", "new conn/req, verified", "overhead"]
    return "\n".join([
        "## mtls-auth (issue 11): proxy CPU µs per request (req/s, p99)", "",
        "Keep-alive: the chain is verified once per connection, so the overhead is "
        "per-request work (target ≤ 10 %); 'steady' leaves out the run's opening handshakes "
        "(one per wrk connection, each costed from the new-connection column). New connection "
        "per request (a full handshake each time, no resumption): the overhead includes TLS "
        "client authentication itself (CertificateRequest, the client's Certificate and "
        "CertificateVerify), which nginx and leanref pay too; target: within one chain "
        "verification.", "",
        table(head, out), "",
        f"One chain verification in-process on the proxy CPU (client ECDSA P-256 leaf, one CA): "
        f"pyOpenSSL `X509StoreContext.verify_certificate()` {bare:.0f} µs; mtls-auth's "
        f"per-connection verdict (`verify.verify`: parse, verify, names) {ours:.0f} µs for "
        f"a chain new to the trust store, {seen:.0f} µs for one it verified before (the "
        f"bench's later connections).",
        *(f"- {n}" for n in notes)])


# ---------------------------------------------------------------- scenario: 1,000 routes


def scenario_routes(b: Bench, count: int = 1000) -> str:
    cpu, target = b.lay.proxy_cpu, count - 2
    path = f"/r{target:04d}/x"
    few: list[int] = [target]

    def nginx() -> Started:
        ports = [free_port(), free_port()]
        conf = proxy_conf(b.run, "nginx-routes", b.origin_port,
                          [server(ports[0], b.pki, locations(few)),
                           server(ports[1], b.pki, locations(range(count)))])
        proc = start_nginx(b, "nginx-routes", conf, ports, cpu)
        return proc, [(f"nginx-{i}", b.keepalive(p, path)) for i, p in enumerate(ports)]

    def ramparts(i: int, indexes: Sequence[int] | range) -> Started:
        proc, port = start_ramparts(b, f"ramparts-routes{i}",
                                    routes_config(b.origin_port, indexes), cpu, check=path)
        return proc, [(f"ramparts-{i}", b.keepalive(port, path))]

    with fleet(b) as f:
        f.add(nginx)
        f.add(lambda: ramparts(0, few))
        f.add(lambda: ramparts(1, range(count)))
        got = f.measure()
    rows = []
    for name in ("nginx", "ramparts"):
        one, many = got.get(f"{name}-0"), got.get(f"{name}-1")
        rows.append([name, cell(one), cell(many),
                     pct_over(many.us_per_req, one.us_per_req) if one and many else "?"])
    return "\n".join([
        f"## {count:,} routes (issue 10): keep-alive HTTPS, proxy CPU µs per request", "",
        f"Prefix routes `/r0000` … `/r{count - 1:04d}` (nginx: as many `location` blocks), "
        f"each to the origin; the request is `GET {path}`, one of the last routes.", "",
        table(["proxy", "1 route", f"{count:,} routes", "difference"], rows),
        *(f"- {n}" for n in f.notes)])


# ---------------------------------------------------------------- scenario: no-op plugins


def noop_names() -> list[str]:
    """The bench's no-op plugins (plugin names, Kong style with '-')."""
    root = PLUGINS / "ramparts_plugins"
    if not root.is_dir():
        return []
    return sorted(d.name.replace("_", "-") for d in root.iterdir()
                  if d.name.startswith("noop") and (d / "handler.py").exists())


def scenario_plugins(b: Bench) -> str:
    names = noop_names()
    title = "## Three no-op plugins (issue 10): keep-alive HTTPS, proxy CPU µs per request\n\n"
    if not names:
        return title + (f"Skipped: no no-op plugin at `{PLUGINS.relative_to(REPO)}/"
                        "ramparts_plugins/noop/` yet (branch `plugins` adds it with the "
                        "`plugins` and `plugin_path` settings).")
    settings = {"plugins": ["bundled", *names], "plugin_path": [str(PLUGINS)]}
    kong, how = noop_config(b.origin_port, names)

    def ramparts(i: int, doc: dict[str, object]) -> Started:
        proc, port = start_ramparts(b, f"ramparts-plugins{i}", doc, b.lay.proxy_cpu, settings)
        return proc, [(f"plugins-{i}", b.keepalive(port))]

    with fleet(b) as f:
        f.add(lambda: ramparts(0, base_config(b.origin_port)))
        f.add(lambda: ramparts(1, kong))
        got = f.measure()
    none, three = got.get("plugins-0"), got.get("plugins-1")
    over = pct_over(three.us_per_req, none.us_per_req) if none and three else "?"
    return title + "\n".join([
        f"Plugins: {how}. Target: at most +10 %.", "",
        table(["proxy", "no plugin", "three no-op plugins", "overhead"],
              [["ramparts", cell(none), cell(three), over]]),
        *(f"- {n}" for n in f.notes)])


# ---------------------------------------------------------------- scenario: workers


def workers_supported() -> bool:
    done = subprocess.run([str(RAMPARTS), "start", "--help"], capture_output=True, text=True,
                          check=False)
    return "--workers" in done.stdout


def scenario_workers(b: Bench) -> str:
    title = "## Workers (issue 13): 1 and 2 worker processes next to nginx's 1 and 2\n\n"
    if not workers_supported():
        return title + "Skipped: `ramparts start` has no `--workers` option yet (branch `workers`)."
    both = f"{b.lay.proxy_cpu},{b.lay.load_cpu}"

    def start(name: str, n: int) -> Started:
        if name == "ramparts":
            proc, port = start_ramparts(b, f"ramparts-w{n}", base_config(b.origin_port), both,
                                        args=["--workers", str(n)])
        else:
            port = free_port()
            conf = proxy_conf(b.run, f"nginx-w{n}", b.origin_port,
                              [server(port, b.pki, pass_all())], workers=n)
            proc = start_nginx(b, f"nginx-w{n}", conf, [port], both)
        return proc, [(f"{name}-{n}-ka", b.keepalive(port, threads=2, cpus=both)),
                      (f"{name}-{n}-new", b.new_conn(port, threads=2, cpus=both))]

    with fleet(b) as f:
        for n in (1, 2):
            for name in ("nginx", "ramparts"):
                f.add(functools.partial(start, name, n))
        got = f.measure()
    res = {(name, n): [got.get(f"{name}-{n}-ka"), got.get(f"{name}-{n}-new")]
           for n in (1, 2) for name in ("nginx", "ramparts")}
    return title + _workers_md(res, f.notes)


def _workers_md(res: dict[tuple[str, int], list[Result | None]], notes: list[str]) -> str:
    def rps(name: str, n: int, i: int) -> float:
        r = res.get((name, n), [None, None])[i]
        return r.rps if r and r.ok else 0.0

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}" if x and y else "?"

    rows = []
    for i, what in enumerate(("keep-alive HTTPS req/s", "full handshakes/s (new conn/req)")):
        rows.append([what, *(cell(res.get(k, [None, None])[i]) for k in
                             (("nginx", 1), ("nginx", 2), ("ramparts", 1), ("ramparts", 2))),
                     ratio(rps("ramparts", 1, i), rps("nginx", 1, i)),
                     ratio(rps("ramparts", 2, i), rps("nginx", 2, i)),
                     ratio(rps("nginx", 2, i), rps("nginx", 1, i)),
                     ratio(rps("ramparts", 2, i), rps("ramparts", 1, i))])
    head = ["", "nginx 1", "nginx 2", "ramparts 1", "ramparts 2", "ramparts÷nginx, 1",
            "ramparts÷nginx, 2", "nginx 2÷1", "ramparts 2÷1"]
    return "\n".join([
        "On 2 cores nothing can be pinned apart: the proxy's workers, wrk (`-t2`) and the "
        "origin share both CPUs, so the 2-worker figures are bounded by the load generator "
        "too and the scaling ratios understate what more cores would give. Proxy CPU µs per "
        "request (req/s, p99) per cell; ratios of req/s.", "",
        table(head, rows), *(f"- {n}" for n in notes)])


# ---------------------------------------------------------------- scenario: idle connections


def scenario_idle(b: Bench) -> str:
    title = "## Idle keep-alive TLS connections (issue 10): memory per connection\n\n"
    script = REPO / "bench" / "idle.py"
    if not script.exists():
        return title + "Skipped: `bench/idle.py` is not there yet (branch `tlslayer`)."
    return title + run_idle(b, script)


def run_idle(b: Bench, script: Path) -> str:
    """bench/idle.py (the same client) against a ramparts node and an nginx."""
    n = int(os.environ.get("IDLE_CONNS", "10000"))
    rows, notes = [], []
    for name in ("nginx", "ramparts"):
        try:
            proc, port = _start_idle_target(b, name)
            try:
                pid = serving_pid(proc.pid, port)
                done = subprocess.run(
                    ["taskset", "-c", b.lay.load_cpu, sys.executable, str(script), "--pid",
                     str(pid), "--url", f"https://127.0.0.1:{port}/", "-n", str(n),
                     "--deadline", "240"], capture_output=True, text=True, cwd=REPO,
                    env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=400, check=False)
            finally:
                b.procs.stop(proc)
            (b.out / f"idle-{name}.txt").write_text(done.stdout + done.stderr)
            got = parse_idle(done.stdout)
            rows.append([name, f"{got.get('held', 0):,.0f}",
                         f"{got.get('before_mb', 0):.1f} → {got.get('with_mb', 0):.1f}",
                         f"{got['kb']:.1f}" if "kb" in got else "FAILED"])
            if done.returncode:
                notes.append(f"{name}: {(done.stdout + done.stderr).strip()[-300:]}")
        except Unavailable as exc:
            notes.append(str(exc))
    return "\n".join([
        f"`bench/idle.py` opens {n:,} TLS connections, makes one request on each and holds "
        "them idle; the RSS of the process that serves them (nginx's worker; its master does "
        "not change) before and with them open. Target for ramparts: ≤ 40 KB.", "",
        table(["proxy", "connections held", "RSS MB", "KB per idle connection"], rows),
        *(f"- {n}" for n in notes)])


def _start_idle_target(b: Bench, name: str) -> tuple[subprocess.Popen[bytes], int]:
    if name == "ramparts":
        return start_ramparts(b, "ramparts-idle", base_config(b.origin_port), b.lay.proxy_cpu,
                              {"nginx_http_keepalive_timeout": "600s"})
    port = free_port()
    conf = proxy_conf(b.run, "nginx-idle", b.origin_port, [server(port, b.pki, pass_all())])
    return start_nginx(b, "nginx-idle", conf, [port], b.lay.proxy_cpu), port


# ---------------------------------------------------------------- scenario: key exchange groups

X25519_FIRST = [29, 23, 24, 25]  # nginx's and leanref's order, as bench/gateway.sh sets it


def scenario_groups(b: Bench) -> str:
    def ramparts(i: int, settings: Mapping[str, object] | None) -> Started:
        proc, port = start_ramparts(b, f"ramparts-groups{i}", base_config(b.origin_port),
                                    b.lay.proxy_cpu, settings)
        return proc, [(f"groups-{i}", b.new_conn(port))]

    with fleet(b) as f:
        f.add(lambda: ramparts(0, None))
        f.add(lambda: ramparts(1, {"tls": {"curve_preferences": X25519_FIRST}}))
        got = f.measure()
    default, first = got.get("groups-0"), got.get("groups-1")
    over = pct_over(default.us_per_req, first.us_per_req) if default and first else "?"
    return "\n".join([
        "## Key exchange groups (issue 10): a new connection and a full handshake per request, "
        "proxy CPU µs per request", "",
        "wrk (OpenSSL) sends an X25519 key share only. Ramparts' default groups are KrakenD's "
        "(P-256, P-384, P-521), so each handshake is a HelloRetryRequest: one more round trip "
        "and a second ClientHello. The harness's ramparts (`bench/gateway.sh`) offers X25519 "
        "first, as nginx and leanref do.", "",
        table(["proxy", "default groups (HelloRetryRequest)", "`curve_preferences: [29, 23, 24, "
               "25]`", "default costs"], [["ramparts", cell(default), cell(first), over]]),
        *(f"- {n}" for n in f.notes)])


# ---------------------------------------------------------------- main


SCENARIOS: dict[str, Callable[[Bench], str]] = {
    "keepalive": scenario_keepalive, "mtls": scenario_mtls, "routes": scenario_routes,
    "plugins": scenario_plugins, "workers": scenario_workers, "idle": scenario_idle,
    "groups": scenario_groups}


def start_origin(b: Bench) -> None:
    b.origin_port, b.origin_tls_port = free_port(), free_port()
    conf = b.run / "origin.conf"
    conf.write_text(origin_conf(b.run, b.origin_port, b.origin_tls_port, b.pki))
    proc = b.procs.start("origin", b.lay.load_cpu, ["nginx", "-p", f"{b.run}/", "-e",
                                                    str(b.run / "origin.error.log"), "-c",
                                                    str(conf)])
    if not wait_port(b.origin_port, 15, proc):
        raise SystemExit(f"origin nginx did not start: {_tail(b.run / 'origin.log')}")
    b.origin_pgid = proc.pid


def environment(b: Bench, other: int) -> str:
    load = Path("/proc/loadavg").read_text().split()[:3]
    return "\n".join([
        f"# Scenarios beyond the harness (`bench/extra.py`, {time.strftime('%Y-%m-%d %H:%M')} "
        "UTC)", "",
        f"- DUR={b.lay.dur}s WARM={b.lay.warm}s CONNS={b.lay.conns}, {b.lay.rounds} interleaved "
        "rounds per comparison (the median run shown); proxy on CPU "
        f"{b.lay.proxy_cpu}, wrk (`-t1`) and the nginx origin on CPU {b.lay.load_cpu} "
        "(workers: unpinned)",
        f"- other tenants' CPU just before the run: {other}% of one CPU (2 CPUs = 200%); load "
        f"average {' / '.join(load)}. The machine is shared: compare CPU µs per request, "
        "not req/s; 'other' in the logs is what the rest of the machine used meanwhile.",
        "- ramparts: one node, default settings (access log on), TLS 1.3 with its default "
        "groups (P-256 first); nginx as in the harness (TLS 1.2+1.3, X25519)."])


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bench_dir = Path(os.environ.get("BENCH_DIR", REPO.parent / "shared" / "bench")).resolve()
    lay = Layout(bench_dir=bench_dir, shim=Path(os.environ.get("SHIM", "/tmp/wrkshim.so")),
                 proxy_cpu=os.environ.get("PROXY_CPU", "0"),
                 load_cpu=os.environ.get("LOAD_CPU", "1"), dur=int(os.environ.get("DUR", "6")),
                 warm=int(os.environ.get("WARM", "1")), conns=int(os.environ.get("CONNS", "50")),
                 rounds=int(os.environ.get("ROUNDS", "3")))
    chosen = os.environ.get("SCENARIOS", " ".join(SCENARIOS)).split()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    subprocess.run([str(bench_dir / "setup.sh")], check=True, capture_output=True)
    run = Path(subprocess.run(["mktemp", "-d", "/tmp/bench-extra.XXXXXX"], capture_output=True,
                              text=True, check=True).stdout.strip())
    b = Bench(lay, Procs(run), run, out, run / "pki")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally below still runs
    try:
        subprocess.run([str(bench_dir / "certs.sh"), str(b.pki), "ec"], check=True,
                       capture_output=True)
        parts = [environment(b, other_load_pct())]
        start_origin(b)
        for name in chosen:
            parts.append(SCENARIOS[name](b))
        (out / "extra.md").write_text("\n\n".join(parts) + "\n")
        (out / "extra.tsv").write_text(tsv(b.results))
        print((out / "extra.md").read_text())
    finally:
        b.procs.stop_all()
        logs = out / "extra-logs"
        logs.mkdir(exist_ok=True)
        for log in run.glob("*.log"):
            shutil.copy(log, logs / log.name)
        shutil.rmtree(run, ignore_errors=True)


def tsv(results: Sequence[Result]) -> str:
    head = "label\trps\tp50_ms\tp99_ms\tus_per_req\tproxy_pct\tother_pct\terrors\tnon2xx\n"
    return head + "".join(
        f"{r.label}\t{r.rps:.0f}\t{r.p50_ms:.2f}\t{r.p99_ms:.2f}\t{r.us_per_req:.1f}\t"
        f"{r.proxy_pct:.0f}\t{r.other_pct:.0f}\t{r.errors}\t{r.non2xx}\n" for r in results)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/extra")
