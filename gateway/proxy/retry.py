"""Which failed attempt is tried again, what the client gets otherwise, and what the target's
health hears: one table, keyed by the failure's kind, read with the request's method and the
state of its body (Kong: ``proxy_next_upstream error timeout``, idempotent requests only,
never a body that has left)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.upstream.balancer import Outcome

Kind = Literal["dns", "connect", "connect_timeout", "tls", "closed", "read_timeout",
               "write_timeout", "bad_response"]
BodyState = Literal["none", "unsent", "sent"]
When = Literal["always", "never", "replayable"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
BAD_GATEWAY = "An invalid response was received from the upstream server"
TIMING_OUT = "The upstream server is timing out"


@dataclass(frozen=True, slots=True)
class Rule:
    retry: When
    status: int
    message: str
    outcome: Outcome
    cause: str  # the log line's words: {origin} and {detail}


TIMED_OUT = "{origin} timed out {detail}"
FAILED = "{origin} failed: {detail}"
RULES: dict[Kind, Rule] = {
    # nothing reached the upstream: safe for any method and body
    "connect": Rule("always", 502, BAD_GATEWAY, "tcp_failure",
                    "cannot connect to {origin}: {detail}"),
    "connect_timeout": Rule("always", 504, TIMING_OUT, "timeout", TIMED_OUT),
    # trying again does not change a name or a certificate
    "dns": Rule("never", 503, "name resolution failed", "tcp_failure",
                "name resolution failed for {origin}: {detail}"),
    "tls": Rule("never", 502, BAD_GATEWAY, "tcp_failure", "TLS to {origin} failed: {detail}"),
    # the request (maybe) arrived: only what can be sent again, and has no side effects
    "closed": Rule("replayable", 502, BAD_GATEWAY, "tcp_failure", FAILED),
    "read_timeout": Rule("replayable", 504, TIMING_OUT, "timeout", TIMED_OUT),
    "write_timeout": Rule("never", 504, TIMING_OUT, "timeout", TIMED_OUT),
    "bad_response": Rule("never", 502, BAD_GATEWAY, "http_failure", FAILED),
}


@dataclass(frozen=True, slots=True)
class Decision:
    retry: bool
    status: int
    message: str
    outcome: Outcome


def decide(kind: Kind, method: str, body: BodyState) -> Decision:
    rule = RULES[kind]
    if rule.retry == "always":
        retry = body != "sent"  # a body half sent cannot be taken back
    elif rule.retry == "replayable":
        retry = body == "none" and method in IDEMPOTENT
    else:
        retry = False
    return Decision(retry, rule.status, rule.message, rule.outcome)


def cause(kind: Kind, origin: str, detail: str) -> str:
    return RULES[kind].cause.format(origin=origin, detail=detail)
