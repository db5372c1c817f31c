"""bench/meter.py's pure parts: what it reads from wrk, the shim and /proc."""

from __future__ import annotations

from bench.meter import Result, cell, group_ticks, parse_wrk, pct_over, table

WRK = """Running 6s test @ https://localhost:9443/
  50 connections
  Non-2xx or 3xx responses: 3
WRKRESULT requests=60000 duration_us=6000000 rps=10000.0 p50_us=4000 p90_us=6000 \
p99_us=12500 max_us=30000 mean_us=4100.5 err_connect=0 err_read=2 err_write=0 err_status=3 \
err_timeout=1 bytes=123
wrkshim: handshakes=50 resumed=0 first=TLSv1.3/TLS_AES_128_GCM_SHA256/prime256v1
"""


def result(**kw: object) -> Result:
    base = dict(label="x", rps=10000.0, p50_ms=4.0, p99_ms=12.5, requests=60000, errors=0,
                non2xx=0, us_per_req=85.25, proxy_pct=99.0, other_pct=5.0, handshakes=50)
    return Result(**{**base, **kw})  # type: ignore[arg-type]


def test_parse_wrk_reads_report_shim_and_non2xx() -> None:
    w = parse_wrk(WRK)
    assert (w["requests"], w["rps"], w["p99_us"], w["err_read"]) == (60000, 10000.0, 12500, 2)
    assert (w["handshakes"], w["non2xx"]) == (50, 3)
    assert parse_wrk("unable to connect to localhost:9443 Connection refused") == {}


def test_group_ticks_sums_one_process_group() -> None:
    # /proc/PID/stat: the command name may hold spaces and ') '; pgrp is field 5,
    # utime/stime fields 14/15
    rest = "S 1 {pg} {pg} 0 -1 4194560 100 0 0 0 {ut} {st} 0 0 20 0 1 0 5 1000 200"
    lines = [f"10 (nginx: master) {rest.format(pg=10, ut=7, st=3)}",
             f"11 (odd) name) {rest.format(pg=10, ut=5, st=5)}",
             f"12 (wrk) {rest.format(pg=12, ut=100, st=100)}"]
    assert group_ticks(10, lines) == 20
    assert group_ticks(13, lines) == 0


def test_cells_and_tables() -> None:
    assert cell(result()) == "85.2 µs (10,000/s, p99 12.50 ms)"
    assert cell(result(non2xx=7)).startswith("FAILED")   # 401s are not a measurement
    assert cell(result(errors=6001)).startswith("FAILED")
    assert cell(None) == "—"
    assert pct_over(110.0, 100.0) == "+10 %" and pct_over(1.0, 0.0) == "?"
    assert table(["a", "b"], [["x", "1"]]) == "| a | b |\n|---|---:|\n| x | 1 |"
