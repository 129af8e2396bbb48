"""A Clock whose time moves only when the test says so: timers, sleeps and timeouts fire
as `advance` passes their deadlines, without real waiting."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from parley.clock import Clock


class FakeTimer:
    def __init__(self, due: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.due, self.callback, self.args = due, callback, args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock(Clock):
    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        self._t = self._t0 = monotonic
        self._wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()
        super().__init__(now=self._wall_now, monotonic=lambda: self._t)

    def _wall_now(self) -> datetime:
        return self._wall + timedelta(seconds=self._t - self._t0)

    @property
    def pending(self) -> int:
        """Timers (sleeps included) not yet fired nor cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> FakeTimer:
        timer = FakeTimer(self._t + max(0.0, delay), callback, args)
        heapq.heappush(self._timers, (timer.due, next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_later(seconds, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as scope:
            timer = self.call_later(seconds, lambda: scope.reschedule(loop.time()))
            try:
                yield
            finally:
                timer.cancel()

    async def advance(self, seconds: float) -> None:
        """Moves time on, firing every timer due on the way in order, and lets the loop run
        what they woke before the next one."""
        target = self._t + seconds
        while self._timers and self._timers[0][0] <= target:
            due, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._t = max(self._t, due)
            timer.callback(*timer.args)
            await settle()
        self._t = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Yields to the event loop until what is ready has run (no time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
