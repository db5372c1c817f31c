"""``repair_form_pem``: the same result as the BEGIN...END regex it replaced, in linear time."""

from __future__ import annotations

import re
import time
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.tls.pem import repair_form_pem

_REGEX = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def by_regex(text: str) -> str:
    """The former implementation: right, but it rescans the rest of the text from every
    BEGIN that has no END (quadratic)."""

    def fix(match: re.Match[str]) -> str:
        lines = match.group(2).split("\n")
        fixed = [ln if (":" in ln or not ln.strip(" \r")) else ln.strip("\r").replace(" ", "+")
                 for ln in lines]
        return f"-----BEGIN {match.group(1)}-----" + "\n".join(fixed) + \
            f"-----END {match.group(1)}-----"

    return _REGEX.sub(fix, text)


pieces = st.sampled_from(["-----BEGIN ", "-----END ", "-----", "CERTIFICATE", "A", "B 1",
                          " ", "\n", "\r\n", "x y", "Proc-Type: 4,ENCRYPTED", "ab+c d",
                          "-"])


@settings(max_examples=300, deadline=timedelta(seconds=2), database=None)
@given(parts=st.lists(pieces, max_size=30))
def test_same_result_as_the_regex(parts: list[str]) -> None:
    text = "".join(parts)
    assert repair_form_pem(text) == by_regex(text)


def test_real_pem_is_repaired() -> None:
    damaged = "-----BEGIN CERTIFICATE-----\nMII a b\nc d \n-----END CERTIFICATE-----\n"
    assert repair_form_pem(damaged) == \
        "-----BEGIN CERTIFICATE-----\nMII+a+b\nc+d+\n-----END CERTIFICATE-----\n"


def test_unmatched_begins_are_linear() -> None:
    hostile = [
        "-----BEGIN A-----" * 20_000 + "-----END B-----",
        "".join(f"-----BEGIN A{i}-----" for i in range(20_000)),
        "-----BEGIN " + "A" * 300_000,
    ]
    for text in hostile:
        started = time.monotonic()
        repair_form_pem(text)
        assert time.monotonic() - started < 1.0
