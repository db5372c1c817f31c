"""bench/publish.py: the run's parts go between the markers of docs/benchmarks.md, with
issue 10's targets (p99 at 50 connections next to nginx's, CPU against leanref)."""

from __future__ import annotations

from pathlib import Path

from bench.publish import END, START, load_tsv, main, targets

COLS = ("proxy\tscenario\trps\tp50_ms\tp90_ms\tp99_ms\tmax_ms\terrors\tnon2xx\tcpu_proxy_pct\t"
        "cpu_load_pct\tsteal_pct\tproxy_pct\tproxy_us_req\twrk_pct\tup_pct\tother_pct\t"
        "handshakes\tresumed\ttls")


def row(proxy: str, scenario: str, rps: str, p99: str, us: str) -> str:
    return "\t".join([proxy, scenario, rps, "1.00", "2.00", p99, "9.00", "0", "0", "99", "50",
                      "0/0", "99", us, "50", "10", "1", "50", "0", "TLSv1.3"])


TSV = "\n".join([COLS, row("nginx", "a", "70000", "1.16", "13.0"),
                 row("leanref", "a", "25000", "2.50", "38.0"),
                 row("ramparts", "a", "12000", "6.40", "76.0"),
                 row("nginx", "b_rsa", "1800", "21.96", "539.4"),
                 row("ramparts", "b_rsa", "FAIL", "-", "-")])


def test_targets_put_p99_next_to_nginx_and_cpu_against_leanref() -> None:
    text = targets(load_tsv(TSV))
    assert "| a  HTTPS keep-alive | 1.16 / 2.50 / 6.40 | 13.0 / 38.0 / 76.0 | 2.00 |" in text
    # a failed run and a proxy missing from the run read as '—', never as a number
    assert "| b2 full handshakes, RSA-2048 | — | 1,800 | — | 539 / — / — | — |" in text


def test_main_replaces_only_the_marked_part(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.md").write_text("# Run X\n")
    (run / "results.tsv").write_text(TSV)
    (run / "extra.md").write_text("# Scenarios beyond the harness\n")
    (run / "reload.md").write_text("## Configuration propagation\n")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\nintro\n{START}\nold numbers\n{END}\n## Reading\nkept\n")
    main(str(run), str(doc))
    text = doc.read_text()
    assert "old numbers" not in text and text.startswith("# Benchmarks\nintro\n")
    assert text.endswith(f"{END}\n## Reading\nkept\n")
    order = [text.index(s) for s in ("# Run X", "Issue 10's targets", "beyond the harness",
                                     "Configuration propagation")]
    assert order == sorted(order)
