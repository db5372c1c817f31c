"""Put a bench run into docs/benchmarks.md (between the results markers).

The run's parts, in order: the harness's results.md, a summary of issue 10's targets drawn
from the harness's results.tsv (CPU per request against leanref, handshake rates against
nginx, p99 at 50 connections next to nginx's), bench/extra.py's scenarios (extra.md) and
bench/reload.py's figures (reload.md). A part that is missing is left out.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
GATEWAY = "ramparts"
KEEPALIVE = (("a", "a  HTTPS keep-alive"), ("c", "c  mTLS at the proxy, keep-alive"),
             ("d", "d  HTTPS upstream with a client certificate"))
HANDSHAKES = (("b", "b  full handshakes, ECDSA P-256"), ("b_rsa", "b2 full handshakes, RSA-2048"))

Rows = dict[tuple[str, str], dict[str, str]]


def load_tsv(text: str) -> Rows:
    return {(r["proxy"], r["scenario"]): r for r in csv.DictReader(io.StringIO(text),
                                                                   delimiter="\t")}


def _num(rows: Rows, proxy: str, scenario: str, key: str) -> float | None:
    value = rows.get((proxy, scenario), {}).get(key, "")
    try:
        return float(value)
    except ValueError:
        return None


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def _ratio(x: float | None, y: float | None) -> str:
    return f"{x / y:.2f}" if x is not None and y else "—"


def targets(rows: Rows) -> str:
    """Issue 10's performance targets, read from one harness run."""
    us, p99, rps = "proxy_us_req", "p99_ms", "rps"
    keep = [[label, " / ".join(_fmt(_num(rows, p, s, p99), ".2f")
                               for p in ("nginx", "leanref", GATEWAY)),
             " / ".join(_fmt(_num(rows, p, s, us)) for p in ("nginx", "leanref", GATEWAY)),
             _ratio(_num(rows, GATEWAY, s, us), _num(rows, "leanref", s, us))]
            for s, label in KEEPALIVE]
    hand = [[label, _fmt(_num(rows, GATEWAY, s, rps), ",.0f"), _fmt(_num(rows, "nginx", s, rps),
                                                                    ",.0f"),
             _ratio(_num(rows, GATEWAY, s, rps), _num(rows, "nginx", s, rps)),
             " / ".join(_fmt(_num(rows, p, s, us), ".0f") for p in ("nginx", "leanref", GATEWAY)),
             _ratio(_num(rows, GATEWAY, s, us), _num(rows, "leanref", s, us))]
            for s, label in HANDSHAKES]
    return "\n".join([
        "## Issue 10's targets in this run", "",
        "Keep-alive (50 connections): p99 latency next to nginx's, and CPU per request "
        "against leanref's (target ≤ 1.4 times).", "",
        "| scenario | p99 ms: nginx / leanref / ramparts | proxy CPU µs/req: nginx / leanref "
        "/ ramparts | ramparts ÷ leanref (CPU) |",
        "|---|---:|---:|---:|",
        *("| " + " | ".join(r) + " |" for r in keep), "",
        "Full handshakes: rate against nginx's (target ≥ 0.9 where the proxy is the "
        "bottleneck, b2) and CPU per handshake against leanref's (target ≤ 1.15 times).", "",
        "| scenario | ramparts /s | nginx /s | ÷ nginx | proxy CPU µs: nginx / leanref / "
        "ramparts | ramparts ÷ leanref (CPU) |",
        "|---|---:|---:|---:|---:|---:|",
        *("| " + " | ".join(r) + " |" for r in hand)])


def parts(run: Path) -> list[str]:
    out = []
    for name in ("results.md", "targets", "extra.md", "reload.md", "tickets.md"):
        if name == "targets":
            tsv = run / "results.tsv"
            if tsv.exists():
                out.append(targets(load_tsv(tsv.read_text())))
        elif (run / name).exists():
            out.append((run / name).read_text().strip())
    return out


def main(run_dir: str, target: str) -> None:
    results = "\n\n".join(parts(Path(run_dir)))
    path = Path(target)
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{results}\n{END}{tail}")
    print(f"{target}: updated from {run_dir}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
