"""What `bench/extra.py` measures with: processes by PID, wrk runs, CPU per request.

Measures as the shared harness (`../shared/bench/run.sh`) does, without its code: wrk (with
the harness's LD_PRELOAD shim for client certificates and forced full handshakes, and its
`report.lua` for one machine-readable line) on the load CPU, the proxy pinned to the proxy
CPU, and the proxy's CPU time per request read from `/proc` for its whole process group — the
figure other tenants of a shared machine move least) — and its descendants, as a
supervisor's workers may lead process groups of their own. Pure helpers (parsing, tables) are
separate from the process control so tests can check them.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Layout:
    bench_dir: Path          # the shared harness (report.lua)
    shim: Path               # its wrk shim (WRK_CLIENT_CERT/KEY, WRK_SNI, WRK_TLS_RESUME)
    proxy_cpu: str = "0"
    load_cpu: str = "1"
    dur: int = 6
    warm: int = 1
    conns: int = 50
    rounds: int = 3          # interleaved measurements per target (the median stands)


@dataclass(frozen=True)
class Result:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non2xx: int
    us_per_req: float        # proxy process-group CPU time per request
    proxy_pct: float         # of one CPU
    other_pct: float         # machine busy time that is neither proxy, origin nor wrk
    handshakes: int

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.non2xx == 0 and self.errors * 100 <= self.requests


# ---------------------------------------------------------------- pure parsing


def parse_wrk(text: str) -> dict[str, int | float]:
    """report.lua's WRKRESULT line, the shim's handshake count and wrk's non-2xx count."""
    found = re.search(r"WRKRESULT (.*)", text)
    if not found:
        return {}
    fields: dict[str, int | float] = {}
    for pair in found.group(1).split():
        key, value = pair.split("=")
        fields[key] = float(value) if "." in value else int(value)
    shim = re.search(r"wrkshim: handshakes=(\d+) resumed=(\d+)", text)
    fields["handshakes"] = int(shim.group(1)) if shim else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    fields["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return fields


def _procs(stats: Sequence[str]) -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgrp, utime+stime) from /proc/PID/stat lines (the command name, in
    parentheses, may itself hold spaces and ') ')."""
    out = {}
    for line in stats:
        rest = line.rsplit(") ", 1)[-1].split()
        if len(rest) > 12:
            out[int(line.split(" ", 1)[0])] = (int(rest[1]), int(rest[2]),
                                               int(rest[11]) + int(rest[12]))
    return out


def tree_pids(root: int, stats: Sequence[str]) -> list[int]:
    """The processes of root's process group and all its descendants (a supervisor's
    workers may be in process groups of their own)."""
    procs = _procs(stats)
    found = {pid for pid, (_, pgrp, _) in procs.items() if pgrp == root or pid == root}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _, _) in procs.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return sorted(found)


def tree_ticks(root: int, stats: Sequence[str]) -> int:
    """utime+stime (clock ticks) of `tree_pids(root)`."""
    procs = _procs(stats)
    return sum(procs[pid][2] for pid in tree_pids(root, stats))


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def pct_over(value: float, base: float) -> str:
    return f"{100 * (value - base) / base:+.0f} %" if base > 0 else "?"


def steady_us(keepalive: Result, new_conn: Result) -> float:
    """Keep-alive CPU per request without the run's opening handshakes (one per wrk
    connection), each costed as a new-connection request less a keep-alive one."""
    handshake = new_conn.us_per_req - keepalive.us_per_req
    return keepalive.us_per_req - keepalive.handshakes * handshake / max(keepalive.requests, 1)


def median_run(runs: Sequence[Result]) -> Result:
    """The run with the median CPU per request among the successful ones (else the first:
    its cell then says it failed)."""
    ok = sorted((r for r in runs if r.ok), key=lambda r: r.us_per_req)
    return ok[(len(ok) - 1) // 2] if ok else runs[0]


def cell(r: Result | None) -> str:
    """`µs/req (req/s, p99 ms)`; a failed or error-ridden run says so."""
    if r is None:
        return "—"
    if not r.ok:
        return f"FAILED ({r.requests} req, {r.errors} err, {r.non2xx} non-2xx)"
    return f"{r.us_per_req:.1f} µs ({r.rps:,.0f}/s, p99 {r.p99_ms:.2f} ms)"


# ---------------------------------------------------------------- /proc readers


def _all_stats() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/stat").read_text())
            except OSError:
                continue
    return out


def cpu_ticks(root: int) -> int:
    return tree_ticks(root, _all_stats()) if root > 0 else 0  # group 0: kernel threads


def busy_ticks() -> int:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return user + nice + system + irq + softirq


def other_load_pct(seconds: float = 3.0) -> int:
    """Busy time of the whole machine while we run nothing, in % of one CPU."""
    b0 = busy_ticks()
    time.sleep(seconds)
    return round(100 * (busy_ticks() - b0) / (HZ * seconds))


def socket_inode(proc_net_tcp: str, server_port: int, client_port: int) -> int | None:
    """The inode of the server side of 127.0.0.1:client_port -> 127.0.0.1:server_port."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in proc_net_tcp.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 9 and cols[1] == local and cols[2] == remote:
            return int(cols[9])
    return None


def parse_idle(text: str) -> dict[str, float]:
    """bench/idle.py's report: connections held, RSS before and with them, KB each."""
    found: dict[str, float] = {}
    for key, pattern in (("held", r"(\d+) idle TLS connections opened"),
                         ("before_mb", r"RSS: ([\d.]+) MB before"),
                         ("with_mb", r"([\d.]+) MB with them open"),
                         ("kb", r"([\d.]+) KB per idle")):
        m = re.search(pattern, text)
        if m:
            found[key] = float(m.group(1))
    return found


# ---------------------------------------------------------------- processes


@dataclass
class Procs:
    """Every process we start, in its own process group; `stop_all` in a finally/trap."""

    run: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, cpus: str, argv: Sequence[str],
              env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> subprocess.Popen[bytes]:
        with (self.run / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(["taskset", "-c", cpus, *argv], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=cwd, start_new_session=True)
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the group, 10 s to leave, then SIGKILL (by PID, never by name)."""
        if proc.poll() is None:
            with _gone:
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        with _gone:  # the group may outlive its leader (workers)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.started)):
            self.stop(proc)


_gone = contextlib.suppress(ProcessLookupError)


def serving_pid(pgid: int, port: int, tries: int = 20) -> int:
    """The process of a group that accepts connections on `port` (nginx's worker, not its
    master; a proxy worker, not a supervisor): the one holding our probe connection."""
    with socket.create_connection(("127.0.0.1", port), 5) as probe:
        client = probe.getsockname()[1]
        for _ in range(tries):
            time.sleep(0.1)
            inode = socket_inode(Path("/proc/net/tcp").read_text(), port, client)
            for pid in (p for p in tree_pids(pgid, _all_stats()) if inode):
                with contextlib.suppress(OSError):
                    fds = Path(f"/proc/{pid}/fd")
                    if any(os.readlink(fd) == f"socket:[{inode}]" for fd in fds.iterdir()):
                        return pid
    return pgid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


# ---------------------------------------------------------------- wrk


@dataclass(frozen=True)
class Load:
    """One wrk run: URL, shim environment, extra wrk arguments."""

    url: str
    env: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()
    threads: int = 1
    cpus: str | None = None     # None: the layout's load CPU


def measure(lay: Layout, label: str, load: Load, pgid: int, out: Path, origin: int = 0
            ) -> Result:
    """wrk after a warm-up on the same URL; `pgid` is the proxy's group, `origin` the origin's."""
    env = {**os.environ, "LD_PRELOAD": str(lay.shim), **dict(load.env)}
    cpus = load.cpus or lay.load_cpu
    base = ["taskset", "-c", cpus, "wrk", f"-t{load.threads}", f"-c{lay.conns}",
            "--timeout", "5s", *load.args]
    if lay.warm:
        subprocess.run([*base, f"-d{lay.warm}s", load.url], env=env, capture_output=True,
                       timeout=lay.warm + 30, check=False)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, p0, o0, t0 = busy_ticks(), cpu_ticks(pgid), cpu_ticks(origin), time.monotonic()
    done = subprocess.run([*base, f"-d{lay.dur}s", "--latency", "-s",
                           str(lay.bench_dir / "tools" / "report.lua"), load.url],
                          env=env, capture_output=True, text=True, timeout=lay.dur + 40,
                          check=False)
    b1, p1, o1, wall = busy_ticks(), cpu_ticks(pgid), cpu_ticks(origin), time.monotonic() - t0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = done.stdout + done.stderr
    (out / f"wrk-{label}.txt").write_text(text)
    ours = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)  # wrk
    ours += (o1 - o0) / HZ
    return _result(label, parse_wrk(text), (p1 - p0) / HZ, (b1 - b0) / HZ, ours, wall)


def _result(label: str, w: dict[str, int | float], proxy_s: float, busy_s: float,
            load_s: float, wall: float) -> Result:
    n = int(w.get("requests", 0))
    errors = sum(int(w.get(k, 0)) for k in ("err_connect", "err_read", "err_write",
                                             "err_timeout"))
    return Result(label=label, rps=float(w.get("rps", 0)),
                  p50_ms=int(w.get("p50_us", 0)) / 1000, p99_ms=int(w.get("p99_us", 0)) / 1000,
                  requests=n, errors=errors, non2xx=int(w.get("non2xx", 0)),
                  us_per_req=1e6 * proxy_s / n if n else 0.0,
                  proxy_pct=100 * proxy_s / wall,
                  other_pct=max(0.0, 100 * (busy_s - proxy_s - load_s) / wall),
                  handshakes=int(w.get("handshakes", 0)))
