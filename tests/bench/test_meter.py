"""bench/meter.py's pure parts: what it reads from wrk, the shim and /proc."""

from __future__ import annotations

from bench.meter import (
    Result,
    cell,
    median_run,
    parse_idle,
    parse_wrk,
    pct_over,
    socket_inode,
    steady_us,
    table,
    tree_pids,
    tree_ticks,
)

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


def test_tree_ticks_sums_the_group_and_its_descendants() -> None:
    # /proc/PID/stat: the command name may hold spaces and ') '; ppid is field 4, pgrp
    # field 5, utime/stime fields 14/15
    rest = "S {pp} {pg} {pg} 0 -1 4194560 100 0 0 0 {ut} {st} 0 0 20 0 1 0 5 1000 200"
    lines = [f"10 (ramparts) {rest.format(pp=1, pg=10, ut=7, st=3)}",
             f"11 (odd) name) {rest.format(pp=10, pg=10, ut=5, st=5)}",
             f"20 (worker) {rest.format(pp=10, pg=20, ut=30, st=10)}",   # own group
             f"21 (its child) {rest.format(pp=20, pg=20, ut=1, st=1)}",
             f"12 (wrk) {rest.format(pp=1, pg=12, ut=100, st=100)}"]
    assert tree_pids(10, lines) == [10, 11, 20, 21]
    assert tree_ticks(10, lines) == 62
    assert tree_ticks(13, lines) == 0


def test_cells_and_tables() -> None:
    assert cell(result()) == "85.2 µs (10,000/s, p99 12.50 ms)"
    assert cell(result(non2xx=7)).startswith("FAILED")   # 401s are not a measurement
    assert cell(result(errors=6001)).startswith("FAILED")
    assert cell(None) == "—"
    assert pct_over(110.0, 100.0) == "+10 %" and pct_over(1.0, 0.0) == "?"
    assert table(["a", "b"], [["x", "1"]]) == "| a | b |\n|---|---:|\n| x | 1 |"


def test_steady_keepalive_leaves_out_the_opening_handshakes() -> None:
    # 60,000 requests cost 85.25 µs each, 50 of them also a handshake of 1,000 µs
    keepalive = result(us_per_req=85.25 + 50 * 1000 / 60000)
    assert round(steady_us(keepalive, result(us_per_req=1085.25 + 50 * 1000 / 60000)), 2) \
        == 85.25


IDLE = """10000 idle TLS connections opened in 71 s (0 failed, 10000 still open 3 s later)
node RSS: 103.2 MB before, 440.9 MB with them open
34.6 KB per idle keep-alive TLS connection
"""


def test_parse_idle_reads_bench_idle_report() -> None:
    assert parse_idle(IDLE) == {"held": 10000, "before_mb": 103.2, "with_mb": 440.9,
                                "kb": 34.6}
    assert parse_idle("Traceback ...") == {}


def test_socket_inode_finds_the_server_side_of_a_connection() -> None:
    tcp = """  sl  local_address rem_address   st tx_queue ... inode
   0: 0100007F:24FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1
   1: 0100007F:24FB 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 222 1
   2: 0100007F:C350 0100007F:24FB 01 00000000:00000000 00:00000000 00000000     0        0 333 1
"""
    assert socket_inode(tcp, 0x24FB, 0xC350) == 222   # not the listener, not the client side
    assert socket_inode(tcp, 0x24FB, 0xC351) is None


def test_median_run_is_the_middle_successful_one() -> None:
    runs = [result(us_per_req=90.0), result(us_per_req=130.0), result(us_per_req=100.0),
            result(us_per_req=10.0, non2xx=5)]   # a failed run never stands
    assert median_run(runs).us_per_req == 100.0
    assert median_run(runs[:2]).us_per_req == 90.0
    failed = result(non2xx=1)
    assert median_run([failed]) is failed
