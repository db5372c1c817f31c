"""What follows a child's exit, and when a dead worker starts again: doubling from 0.1 s to
10 s, reset by a long run."""

from __future__ import annotations

import pytest

from gateway.workers.backoff import Backoff, Exit, after_exit

CASES = [
    # (seconds each death came after, the delays they get)
    ([0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.4, 0.8]),
    ([1.0] * 10, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]),
    ([0.5, 0.5, 0.5, 60.0, 0.5], [0.1, 0.2, 0.4, 0.1, 0.2]),  # ran a while: news, not a loop
    ([30.0, 30.0], [0.1, 0.1]),
]


@pytest.mark.parametrize(("ran", "delays"), CASES)
def test_delays(ran: list[float], delays: list[float]) -> None:
    backoff = Backoff()
    assert [backoff.delay(r) for r in ran] == pytest.approx(delays)


EXITS = [
    # told to stop, SIGHUP replacement, slot served once -> action
    (True, False, True, Exit.EXPECTED),     # drained after SIGTERM or a replacement
    (True, True, False, Exit.EXPECTED),     # a replacement killed for being too slow
    (False, True, True, Exit.KEEP_OLD),     # new settings do not start: keep the old one
    (False, False, False, Exit.NODE_FAILS),  # never served at the node's start: exit 1
    (False, False, True, Exit.RESTART),     # a crash (SIGKILL, OOM): back-off, restart
]


@pytest.mark.parametrize(("stop", "replacement", "served", "action"), EXITS)
def test_after_exit(stop: bool, replacement: bool, served: bool, action: Exit) -> None:
    assert after_exit(stop, replacement, served) is action
