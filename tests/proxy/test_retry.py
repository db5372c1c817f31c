"""The retry table: which failed attempt is tried again, with what answer and health."""

from __future__ import annotations

import pytest

from gateway.proxy.retry import RULES, cause, decide


@pytest.mark.parametrize(("kind", "method", "body", "retry", "status", "outcome"), [
    # nothing reached the upstream: any method, even a POST with its body, moves on
    ("connect", "POST", "unsent", True, 502, "tcp_failure"),
    ("connect", "GET", "none", True, 502, "tcp_failure"),
    ("connect_timeout", "POST", "unsent", True, 504, "timeout"),
    # names and certificates do not change by trying again
    ("dns", "GET", "none", False, 503, "tcp_failure"),
    ("tls", "GET", "none", False, 502, "tcp_failure"),
    # the request may have arrived: idempotent and bodiless only
    ("closed", "GET", "none", True, 502, "tcp_failure"),
    ("closed", "DELETE", "none", True, 502, "tcp_failure"),
    ("closed", "POST", "none", False, 502, "tcp_failure"),
    ("closed", "PUT", "sent", False, 502, "tcp_failure"),
    ("read_timeout", "GET", "none", True, 504, "timeout"),
    ("read_timeout", "PATCH", "none", False, 504, "timeout"),
    ("read_timeout", "GET", "sent", False, 504, "timeout"),
    ("write_timeout", "PUT", "sent", False, 504, "timeout"),
    ("bad_response", "GET", "none", False, 502, "http_failure"),
])
def test_decisions(kind: str, method: str, body: str, retry: bool, status: int,
                   outcome: str) -> None:
    decision = decide(kind, method, body)  # type: ignore[arg-type]
    assert (decision.retry, decision.status, decision.outcome) == (retry, status, outcome)


def test_every_kind_has_kongs_message_and_a_log_line() -> None:
    messages = {rule.message for rule in RULES.values()}
    assert messages == {"An invalid response was received from the upstream server",
                        "The upstream server is timing out", "name resolution failed"}
    assert cause("connect", "http://h:1", "refused") == "cannot connect to http://h:1: refused"
    assert cause("write_timeout", "http://h:1", "sending the request (write_timeout)") == \
        "http://h:1 timed out sending the request (write_timeout)"
    assert cause("tls", "https://h:1", "hostname mismatch") == \
        "TLS to https://h:1 failed: hostname mismatch"
