"""Moving-window rate limits on an injected Clock, counted in memory or in Redis: the one
implementation behind the server's Throttle and the gateway's RateLimits.

A rate ("10/second", "5/minute": `limits`' notation; that package only parses it here)
allows `amount` uses in any `expiry` seconds. A use counts while it is newer than
now - expiry (so it has left the window exactly `expiry` seconds after it was made); a
refused use is not counted. Every call answers with a `Window`: whether there was room,
the uses left, and the seconds until the oldest counted use leaves the window (the
Retry-After of a refusal, the RateLimit-Reset of any answer).

In memory (one process) a window is a deque of `clock.monotonic()` stamps per key; keys
with no live use are forgotten in one synchronous pass at most every SWEEP_EVERY seconds.
In Redis (several processes share a budget) it is a list of the uses still in the window
(newest stamp first, under `limits`' key names), stamped with the clock's wall time; one
Lua script call reads and, for a hit, writes it atomically. Why not
`limits`' own strategies: they read `time.time()` themselves, so no clock can be injected,
and cost more (docs/performance.md, "Rate limits on the clock").
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from limits import parse

from parley import redisclient
from parley.server.clock import Clock

SWEEP_EVERY = 1.0  # seconds between two passes forgetting the keys with no use left
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


# A window after a hit or a peek: (allowed: there was room, and a hit counted its use;
# remaining: uses left in the window; reset: seconds until the oldest counted use leaves
# it, 0.0 when none is counted). A plain tuple: a NamedTuple or a dataclass would cost
# more than the rest of an in-memory hit, on the path every frame takes.
Window = tuple[bool, int, float]


class MemoryWindows:
    """Moving windows in this process's memory, on monotonic time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.uses: dict[str, collections.deque[float]] = {}
        self.expiries: dict[str, int] = {}
        self._sweep_at = 0.0

    def hit(self, key: str, rate: Rate) -> Window:
        """Counts one use when there is room."""
        now = self.clock.monotonic()
        if now >= self._sweep_at:
            self._sweep(now)
        window = self._window(key, rate, now)
        left = rate.amount - len(window)
        if left > 0:
            window.append(now)
            return True, left - 1, window[0] + rate.expiry - now
        return False, 0, window[0] + rate.expiry - now

    def peek(self, key: str, rate: Rate) -> Window:
        """Like `hit` without counting a use."""
        now = self.clock.monotonic()
        window = self._window(key, rate, now)
        reset = window[0] + rate.expiry - now if window else 0.0
        return len(window) < rate.amount, rate.amount - len(window), reset

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
        """Forgets the keys whose newest use has expired (memory bounded by recent users)."""
        self._sweep_at = now + SWEEP_EVERY
        stale = [k for k, w in self.uses.items() if not w or w[-1] <= now - self.expiries[k]]
        for key in stale:
            del self.uses[key], self.expiries[key]


# The window of KEYS[1] at ARGV[1] (wall time, seconds), for ARGV[2] uses in ARGV[3]
# seconds: a use counts while it is newer than now - expiry. The list holds the uses newest
# first, only those still in the window: the ones that left it are popped from its tail
# first (each once), so its length is the count and its tail the oldest, whatever the
# limit. (`limits`' own layout keeps up to `amount` stamps and binary-searches them: with a
# generous limit, a list of thousands read on every hit; docs/performance.md.) With
# ARGV[4] == "1" a use is counted when there is room. Returns {allowed, uses in the
# window, the oldest of them or ""}.
_WINDOW = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local cutoff = now - expiry
local oldest = redis.call('lindex', KEYS[1], -1)
while oldest and tonumber(oldest) <= cutoff do
    redis.call('rpop', KEYS[1])
    oldest = redis.call('lindex', KEYS[1], -1)
end
local uses = redis.call('llen', KEYS[1])
local allowed = 0
if uses < limit then
    allowed = 1
    if ARGV[4] == '1' then
        redis.call('lpush', KEYS[1], ARGV[1])
        redis.call('expire', KEYS[1], expiry)
        uses = uses + 1
        oldest = oldest or ARGV[1]
    end
end
if uses == 0 then
    return {allowed, 0, ""}
end
return {allowed, uses, oldest}
"""


class RedisWindows:
    """The same windows in Redis under `prefix`, shared by every process, on the clock's
    wall time. Redis errors propagate: the caller decides to fail open or not."""

    def __init__(self, url: str, prefix: str, clock: Clock) -> None:
        self.redis: Any = redisclient.connect(url)
        self.prefix = prefix
        self.clock = clock
        self._script = self.redis.register_script(_WINDOW)

    async def hit(self, key: str, rate: Rate) -> Window:
        return await self._call(key, rate, count=True)

    async def peek(self, key: str, rate: Rate) -> Window:
        return await self._call(key, rate, count=False)

    async def clear(self, key: str) -> None:
        await self.redis.delete(f"{self.prefix}:{key}")

    async def reset(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000)]
        if keys:
            await self.redis.delete(*keys)

    async def _call(self, key: str, rate: Rate, *, count: bool) -> Window:
        now = self.clock.now().timestamp()
        allowed, uses, oldest = await self._script(
            keys=[f"{self.prefix}:{key}"],
            args=[repr(now), rate.amount, rate.expiry, "1" if count else "0"],
        )
        reset = float(oldest) + rate.expiry - now if uses else 0.0
        return bool(allowed), rate.amount - int(uses), reset


def make_windows(redis_url: str | None, prefix: str, clock: Clock) -> MemoryWindows | RedisWindows:
    """Redis windows under `prefix` when a URL is given, else this process's memory."""
    return RedisWindows(redis_url, prefix, clock) if redis_url else MemoryWindows(clock)
