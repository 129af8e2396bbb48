"""The one clock of a server process: wall time for rows and tokens, monotonic for timers.

Tests inject their own (a fixed or advancing time); every timer of the process, the hub's
presence included, reads this clock rather than `time` or `datetime` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """Calling it gives the wall time (so `state.clock()` reads like a function)."""

    def __init__(
        self,
        now: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._now = now
        self.monotonic = monotonic

    def __call__(self) -> datetime:
        return self._now()

    def now(self) -> datetime:
        return self._now()


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    if isinstance(clock, Clock):
        return clock
    return Clock(clock or utcnow)
