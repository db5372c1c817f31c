"""What the supervisor does when a child exits, and when a dead one is started again (pure):
at once-ish after a crash of a process that ran a while, ever slower while it keeps dying
young, so a worker that cannot run does not spin."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Exit(Enum):
    EXPECTED = "expected"      # it was told to stop (drain, SIGHUP replacement, node stop)
    KEEP_OLD = "keep-old"      # a SIGHUP replacement died: keep the running one, stop rolling
    NODE_FAILS = "node-fails"  # its slot never served: the node cannot start (exit 1)
    RESTART = "restart"        # a crash: start it again after the back-off delay


# (told to stop, a SIGHUP replacement, its slot served once) -> what to do
EXITS: dict[tuple[bool, bool, bool], Exit] = {
    (True, False, False): Exit.EXPECTED, (True, False, True): Exit.EXPECTED,
    (True, True, False): Exit.EXPECTED, (True, True, True): Exit.EXPECTED,
    (False, True, False): Exit.KEEP_OLD, (False, True, True): Exit.KEEP_OLD,
    (False, False, False): Exit.NODE_FAILS,
    (False, False, True): Exit.RESTART,
}


def after_exit(told_to_stop: bool, replacement: bool, served: bool) -> Exit:
    return EXITS[(told_to_stop, replacement, served)]

FIRST = 0.1      # seconds before the first restart
LONGEST = 10.0   # the delay doubles up to this
SETTLED = 30.0   # a process that ran this long resets the delay: its death is news


@dataclass
class Backoff:
    first: float = FIRST
    longest: float = LONGEST
    settled: float = SETTLED
    _next: float = FIRST

    def __post_init__(self) -> None:
        self._next = self.first

    def delay(self, ran_for: float) -> float:
        """The wait before the next start, for a process that died after ``ran_for``
        seconds; each early death doubles the following wait."""
        if ran_for >= self.settled:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.longest)
        return delay
