"""Per-user and per-account rate limits: moving windows on the process's Clock, counted in
memory or in Redis.

A limit ("10/second", "5/minute": `limits`' notation, parsed by that package) allows
`amount` uses in any `expiry` seconds: a use counts until `expiry` seconds after it, a
refused use is not counted, and Retry-After is the whole seconds until the oldest counted
use leaves the window (at least 1).

In memory (one process) a window is a deque of `clock.monotonic()` stamps per key. In
Redis (several processes share a budget) it is the list `limits`' moving window keeps
(newest stamp first, at most `amount` long, same key names) stamped with the clock's wall
time, and a use and its window are read and written by one Lua script call, atomically.
Both read the time only through the injected Clock, so a test advancing a fake clock
refills a window (tests/unit/test_throttle.py). Why not `limits`' own strategies: they
read `time.time()` themselves, and cost more (docs/performance.md, "Rate limits on the
clock").
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any

from limits import parse

from parley import redisclient
from parley.errors import RateLimited
from parley.server.clock import Clock

EXPIRY_EVERY = 1.0  # seconds between two passes forgetting the keys with no use left
NAMESPACE = "LIMITER"


@dataclass(frozen=True, slots=True)
class Rate:
    amount: int
    expiry: int  # seconds
    tail: str  # "10/1/second"

    @classmethod
    def parse(cls, text: str) -> Rate:
        item = parse(text)
        return cls(item.amount, item.get_expiry(), item.key_for().removeprefix(NAMESPACE + "/"))

    def key_for(self, name: str, key: str | int) -> str:
        """`limits`' key ("LIMITER/send/42/10/1/second"), so Redis keys stay the same."""
        return f"{NAMESPACE}/{name}/{key}/{self.tail}"


class MemoryWindows:
    """Moving windows in this process's memory, on monotonic time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.uses: dict[str, collections.deque[float]] = {}
        self.expiries: dict[str, int] = {}
        self._sweep_at = 0.0

    def hit(self, key: str, rate: Rate) -> float | None:
        """Counts one use; None when allowed, else the seconds until one is free."""
        now = self.clock.monotonic()
        if now >= self._sweep_at:
            self._sweep(now)
        window = self._window(key, rate, now)
        if len(window) < rate.amount:
            window.append(now)
            return None
        return window[0] + rate.expiry - now

    def peek(self, key: str, rate: Rate) -> float | None:
        """Like `hit` without counting a use."""
        now = self.clock.monotonic()
        window = self._window(key, rate, now)
        return None if len(window) < rate.amount else window[0] + rate.expiry - now

    def clear(self, key: str) -> None:
        self.uses.pop(key, None)
        self.expiries.pop(key, None)

    def reset(self) -> None:
        self.uses.clear()
        self.expiries.clear()

    def _window(self, key: str, rate: Rate, now: float) -> collections.deque[float]:
        window = self.uses.get(key)
        if window is None:
            window = self.uses[key] = collections.deque()
            self.expiries[key] = rate.expiry
        cutoff = now - rate.expiry
        while window and window[0] <= cutoff:
            window.popleft()
        return window

    def _sweep(self, now: float) -> None:
        """Forgets the keys whose newest use has expired (memory bounded by recent users);
        one synchronous pass at most every EXPIRY_EVERY seconds."""
        self._sweep_at = now + EXPIRY_EVERY
        stale = [k for k, w in self.uses.items() if not w or w[-1] <= now - self.expiries[k]]
        for key in stale:
            del self.uses[key], self.expiries[key]


# The window of KEYS[1] at ARGV[1] (wall time, seconds): a use counts while it is newer
# than now - expiry. With ARGV[4] == "1" a use is counted when there is room. Returns
# {allowed, the oldest use still counted or ""}; allowed is 1 when there was room.
_WINDOW = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local cutoff = now - expiry
local last = redis.call('lindex', KEYS[1], limit - 1)
if not (last and tonumber(last) > cutoff) then
    if ARGV[4] == '1' then
        redis.call('lpush', KEYS[1], ARGV[1])
        redis.call('ltrim', KEYS[1], 0, limit - 1)
        redis.call('expire', KEYS[1], expiry)
    end
    return {1, ""}
end
local low, high, found = 0, limit - 1, nil
while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', KEYS[1], mid))
    if value and value > cutoff then
        found = mid
        low = mid + 1
    else
        high = mid - 1
    end
end
return {0, redis.call('lindex', KEYS[1], found)}
"""


class RedisWindows:
    """The same windows in Redis, shared by every process, on the clock's wall time."""

    def __init__(self, url: str, prefix: str, clock: Clock) -> None:
        self.redis: Any = redisclient.connect(url)
        self.prefix = prefix
        self.clock = clock
        self._script = self.redis.register_script(_WINDOW)

    async def hit(self, key: str, rate: Rate) -> float | None:
        return await self._call(key, rate, count=True)

    async def peek(self, key: str, rate: Rate) -> float | None:
        return await self._call(key, rate, count=False)

    async def _call(self, key: str, rate: Rate, *, count: bool) -> float | None:
        now = self.clock.now().timestamp()
        allowed, oldest = await self._script(
            keys=[f"{self.prefix}:{key}"],
            args=[repr(now), rate.amount, rate.expiry, "1" if count else "0"],
        )
        return None if allowed else float(oldest) + rate.expiry - now

    async def clear(self, key: str) -> None:
        await self.redis.delete(f"{self.prefix}:{key}")

    async def reset(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000)]
        if keys:
            await self.redis.delete(*keys)


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
        clock = clock or Clock()
        self._windows: MemoryWindows | RedisWindows = (
            RedisWindows(redis_url, prefix + "limits", clock) if redis_url else MemoryWindows(clock)
        )
        self._rates = {name: Rate.parse(value) for name, value in limits.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._rates

    async def hit(self, name: str, key: str | int, *, detail: str | None = None) -> None:
        """Counts one use; raises RateLimited (with Retry-After) past the limit."""
        wait = await self._hit(name, key)
        if wait is not None:
            raise RateLimited(detail, retry_after=_retry_after(wait))

    async def allow(self, name: str, key: str | int) -> bool:
        """Counts one use; False past the limit (for frames dropped silently, like typing)."""
        return await self._hit(name, key) is None

    async def check(self, name: str, key: str | int, *, detail: str | None = None) -> None:
        """Raises RateLimited when the limit is used up, without counting a use."""
        rate = self._rates[name]
        windows = self._windows
        full_key = self._key(name, key)
        if isinstance(windows, MemoryWindows):
            wait = windows.peek(full_key, rate)
        else:
            wait = await windows.peek(full_key, rate)
        if wait is not None:
            raise RateLimited(detail, retry_after=_retry_after(wait))

    async def clear(self, name: str, key: str | int) -> None:
        """Forgets the uses counted for `key` (a reserved slot given back)."""
        windows = self._windows
        if isinstance(windows, MemoryWindows):
            windows.clear(self._key(name, key))
        else:
            await windows.clear(self._key(name, key))

    async def reset(self) -> None:
        windows = self._windows
        if isinstance(windows, MemoryWindows):
            windows.reset()
        else:
            await windows.reset()

    async def _hit(self, name: str, key: str | int) -> float | None:
        rate = self._rates[name]
        windows = self._windows
        if isinstance(windows, MemoryWindows):
            return windows.hit(self._key(name, key), rate)
        return await windows.hit(self._key(name, key), rate)

    def _key(self, name: str, key: str | int) -> str:
        return self._rates[name].key_for(name, key)


def _retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))
