"""The node's health view merged from its workers' views."""

from __future__ import annotations

import pytest

from gateway.workers.control import HealthView, merge

H, U, OFF = "HEALTHY", "UNHEALTHY", "HEALTHCHECKS_OFF"

CASES = [
    ([{"a": H}, {"a": H}], {"a": H}),
    ([{"a": H}, {"a": U}], {"a": U}),      # one worker saw it fail: unhealthy
    ([{"a": U}, {"a": H}], {"a": U}),
    ([{"a": OFF}, {"a": OFF}], {"a": OFF}),
    ([{"a": H, "b": U}, {"a": H}], {"a": H, "b": U}),
]


@pytest.mark.parametrize(("views", "merged"), CASES)
def test_a_target_is_unhealthy_when_any_worker_saw_it_so(views: list[dict[str, str]],
                                                         merged: dict[str, str]) -> None:
    got = merge(HealthView(True, True, v) for v in views)
    assert got is not None and got.targets == merged


def test_the_upstream_is_available_only_if_every_worker_can_use_it() -> None:
    got = merge([HealthView(True, True, {}), HealthView(True, False, {})])
    assert got is not None and not got.available and got.checks_on
    assert merge([]) is None
