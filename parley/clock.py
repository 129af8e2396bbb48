"""The one clock of a process (server or gateway): wall time for rows and tokens, monotonic
time, sleeps, timers and timeouts for everything periodic.

Every timer of the process (the workers' loops, the presence flush and heartbeat, the
writer's admission timeout, the /stats cache, the rate-limit windows) reads and waits
through this clock rather than `time`, `datetime` or `asyncio.sleep` directly, so tests
inject their own (tests/fake_clock.py) and drive the timers without real waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol


def utcnow() -> datetime:
    return datetime.now(UTC)


class Timer(Protocol):
    """A pending callback (asyncio.TimerHandle is one)."""

    def cancel(self) -> None: ...


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

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[Any]:
        """`async with clock.timeout(s):` raises TimeoutError when the block takes longer."""
        return asyncio.timeout(seconds)


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    if isinstance(clock, Clock):
        return clock
    return Clock(clock or utcnow)
