"""Per-user and per-account rate limits (the `limits` package; memory or Redis storage)."""

from __future__ import annotations

import bisect
import math
import time

from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from parley.errors import RateLimited

EXPIRY_EVERY = 1.0  # seconds between two passes forgetting the expired uses


class LocalStorage(MemoryStorage):
    """`limits`' in-process storage, forgetting expired uses in one synchronous pass at
    most once a second.

    The library's own pass starts after any hit once the previous one finished, and
    sends every key's list to a worker thread (`asyncio.to_thread`) to bisect it: with a
    few hundred users that is hundreds of thread hand-offs per pass, passes back to back
    under a steady load, and it cost more CPU than the frames being counted (py-spy of
    the `pairs` bench: the loop mostly in thread wake-ups). Bisecting a short list takes
    microseconds; the pass holds no lock because it never awaits.
    """

    _last_pass = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # the library's hook
        now = time.monotonic()
        if now - self._last_pass >= EXPIRY_EVERY:
            self._last_pass = now
            self._expire(time.time())

    def _expire(self, now: float) -> None:
        for key, events in list(self.events.items()):
            cutoff = bisect.bisect_left(events, -now, key=lambda event: -event.expiry)
            if cutoff:
                self.events[key] = events[:cutoff]
            else:
                del self.events[key]
                self.locks.pop(key, None)
        for key, expiry in list(self.expirations.items()):
            if expiry <= now:
                self.storage.pop(key, None)
                del self.expirations[key]
                self.locks.pop(key, None)


class Throttle:
    """Named limits ("send", "typing", "login", "frame:edit"...) checked against one storage."""

    def __init__(self, limits: dict[str, str], *, redis_url: str | None, prefix: str) -> None:
        storage = (
            storage_from_string(
                "async+" + redis_url, implementation="redispy", key_prefix=prefix + "limits"
            )
            if redis_url
            else LocalStorage()
        )
        if not isinstance(storage, Storage):
            raise TypeError("REDIS_URL: no asyncio rate-limit storage for this URL")
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._items = {name: parse(value) for name, value in limits.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._items

    async def hit(self, name: str, key: str | int, *, detail: str | None = None) -> None:
        """Counts one use; raises RateLimited (with Retry-After) past the limit."""
        item = self._items[name]
        if not await self._limiter.hit(item, name, str(key)):
            raise RateLimited(detail, retry_after=await self._retry_after(name, key))

    async def allow(self, name: str, key: str | int) -> bool:
        """Counts one use; False past the limit (for frames dropped silently, like typing)."""
        return await self._limiter.hit(self._items[name], name, str(key))

    async def check(self, name: str, key: str | int, *, detail: str | None = None) -> None:
        """Raises RateLimited when the limit is used up, without counting a use."""
        if not await self._limiter.test(self._items[name], name, str(key)):
            raise RateLimited(detail, retry_after=await self._retry_after(name, key))

    async def clear(self, name: str, key: str | int) -> None:
        """Forgets the uses counted for `key` (a reserved slot given back)."""
        await self._limiter.clear(self._items[name], name, str(key))

    async def _retry_after(self, name: str, key: str | int) -> int:
        reset, _ = await self._limiter.get_window_stats(self._items[name], name, str(key))
        return max(1, math.ceil(reset - time.time()))

    async def reset(self) -> None:
        await self._storage.reset()
