"""Per-user and per-account rate limits of the server: named limits ("send", "login",
"frame:edit"...) over parley/ratewindows.py's moving windows, in memory or in Redis (under
the settings' prefix + "limits"), raising RateLimited with Retry-After past a limit.

Retry-After is the whole seconds until the oldest counted use leaves the window (at least
1). The windows read the time only through the injected Clock, so a test advancing a fake
clock refills them (tests/unit/test_throttle.py).
"""

from __future__ import annotations

import math

from parley.clock import Clock
from parley.errors import RateLimited
from parley.ratewindows import MemoryWindows, Rate, Window, make_windows


class Throttle:
    """Named limits ("send", "typing", "login", "frame:edit"...) checked against one storage."""

    def __init__(
        self,
        limits: dict[str, str],
        *,
        redis_url: str | None,
        prefix: str,
        clock: Clock | None = None,
    ) -> None:
        self._windows = make_windows(redis_url, prefix + "limits", clock or Clock())
        self._rates = {name: Rate.parse(value) for name, value in limits.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._rates

    async def hit(self, name: str, key: str | int, *, detail: str | None = None) -> None:
        """Counts one use; raises RateLimited (with Retry-After) past the limit."""
        allowed, _, reset = await self._hit(name, key)
        if not allowed:
            raise RateLimited(detail, retry_after=_retry_after(reset))

    async def allow(self, name: str, key: str | int) -> bool:
        """Counts one use; False past the limit (for frames dropped silently, like typing)."""
        return (await self._hit(name, key))[0]

    async def check(self, name: str, key: str | int, *, detail: str | None = None) -> None:
        """Raises RateLimited when the limit is used up, without counting a use."""
        rate = self._rates[name]
        windows = self._windows
        full_key = rate.key_for(name, key)
        if isinstance(windows, MemoryWindows):
            allowed, _, reset = windows.peek(full_key, rate)
        else:
            allowed, _, reset = await windows.peek(full_key, rate)
        if not allowed:
            raise RateLimited(detail, retry_after=_retry_after(reset))

    async def clear(self, name: str, key: str | int) -> None:
        """Forgets the uses counted for `key` (a reserved slot given back)."""
        windows = self._windows
        full_key = self._rates[name].key_for(name, key)
        if isinstance(windows, MemoryWindows):
            windows.clear(full_key)
        else:
            await windows.clear(full_key)

    async def reset(self) -> None:
        windows = self._windows
        if isinstance(windows, MemoryWindows):
            windows.reset()
        else:
            await windows.reset()

    async def _hit(self, name: str, key: str | int) -> Window:
        rate = self._rates[name]
        windows = self._windows
        # memory windows are synchronous: no coroutine on the path every frame takes
        if isinstance(windows, MemoryWindows):
            return windows.hit(rate.key_for(name, key), rate)
        return await windows.hit(rate.key_for(name, key), rate)


def _retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))
