"""When a dead worker is started again (pure): at once-ish after a crash of a process that ran
a while, ever slower while it keeps dying young, so a worker that cannot run does not spin."""

from __future__ import annotations

from dataclasses import dataclass

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
