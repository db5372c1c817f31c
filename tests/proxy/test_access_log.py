"""Access log lines: nginx's combined format with the request id, or JSON; written by a
thread."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace

from gateway.proxy.access_log import AccessLog, Entry, as_json, combined

ENTRY = Entry(client_ip="10.0.0.1", when=1796533200.0, method="GET", target="/a?b=1",
              version="1.1", status=200, sent=13, referer=None, user_agent='curl "x"',
              request_id="abc", latency_ms=4)


def test_combined_format() -> None:
    assert combined(ENTRY) == ('10.0.0.1 - - [06/Dec/2026:05:00:00 +0000] "GET /a?b=1 '
                               'HTTP/1.1" 200 13 "-" "curl \\"x\\"" "abc" "-"')


def test_combined_format_ends_with_the_client_verify_verdict() -> None:
    line = combined(replace(ENTRY, client_verify="FAILED:certificate has expired"))
    assert line.endswith(' "abc" "FAILED:certificate has expired"')


def test_json_format_carries_client_verify_as_kongs_serializer() -> None:
    assert "tls" not in json.loads(as_json(ENTRY))["request"]  # plain HTTP
    line = json.loads(as_json(replace(ENTRY, client_verify="SUCCESS")))
    assert line["request"]["tls"] == {"client_verify": "SUCCESS"}


def test_json_format() -> None:
    line = json.loads(as_json(ENTRY))
    assert line["request"]["uri"] == "/a?b=1" and line["response"]["status"] == 200
    assert line["request_id"] == "abc" and line["started_at"] == 1796533200000


def test_lines_are_written_off_the_caller() -> None:
    stream = io.StringIO()
    log = AccessLog(stream)
    for _ in range(3):
        log(ENTRY)
    deadline = time.monotonic() + 5
    while stream.getvalue().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue().count('"abc" "-"\n') == 3
    log.close()


def test_combined_format_escapes_the_request_line_and_dashes_empty_fields() -> None:
    line = combined(replace(ENTRY, target='/a"b\\c', referer="", user_agent=None))
    assert line == ('10.0.0.1 - - [06/Dec/2026:05:00:00 +0000] "GET /a\\"b\\\\c HTTP/1.1" '
                    '200 13 "-" "-" "abc" "-"')
