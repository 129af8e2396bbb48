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
import hashlib
from dataclasses import dataclass
from typing import Any

from limits import parse
from redis.exceptions import NoScriptError

from parley import redisclient
from parley.clock import Clock

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


# The windows of KEYS[1..n] at ARGV[1] (wall time, seconds); for KEYS[i], ARGV[3i - 1],
# ARGV[3i] and ARGV[3i + 1] are its limit (uses), its expiry (seconds) and "1" when a use
# is to be counted. A use counts while it is newer than now - expiry. Each list holds the
# uses newest first, only those still in the window: the ones that left it are popped
# from its tail first (each once), so its length is the count and its tail the oldest,
# whatever the limit. (`limits`' own layout keeps up to `amount` stamps and binary-searches
# them: with a generous limit, a list of thousands read on every hit; docs/performance.md.)
# Keys are handled in order, so two hits on one key in a call count as two. Returns, per
# key, allowed (1 when there was room), the uses in the window, and the oldest or "".
_WINDOWS = """
local now = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[3 * i - 1])
    local expiry = tonumber(ARGV[3 * i])
    local cutoff = now - expiry
    local oldest = redis.call('lindex', key, -1)
    while oldest and tonumber(oldest) <= cutoff do
        redis.call('rpop', key)
        oldest = redis.call('lindex', key, -1)
    end
    local uses = redis.call('llen', key)
    local allowed = 0
    if uses < limit then
        allowed = 1
        if ARGV[3 * i + 1] == '1' then
            redis.call('lpush', key, ARGV[1])
            redis.call('expire', key, expiry)
            uses = uses + 1
            oldest = oldest or ARGV[1]
        end
    end
    out[3 * i - 2] = allowed
    out[3 * i - 1] = uses
    out[3 * i] = oldest or ""
end
return out
"""
_SHA = hashlib.sha1(_WINDOWS.encode()).hexdigest()

Ask = tuple[str, Rate, bool]  # key (without the prefix), rate, count a use


class RedisWindows:
    """The same windows in Redis under `prefix`, shared by every process, on the clock's
    wall time. Redis errors propagate: the caller decides to fail open or not.

    Calls are grouped (`redisclient.Grouped`) as the message writer groups sends: a call
    made while none is in flight goes at once, alone; the calls made meanwhile wait and
    then go together, as one script call. A busy process pays one round trip, and
    redis-py's own cost per command, per group instead of per request (docs/performance.md,
    "Round trips on PostgreSQL and Redis"). The groups go one after another on a `Lane`:
    one held connection."""

    def __init__(self, url: str, prefix: str, clock: Clock) -> None:
        self.redis: Any = redisclient.connect(url)
        self.prefix = prefix
        self.clock = clock
        self._lane = redisclient.Lane(self.redis)
        self._ask: redisclient.Grouped[Ask, Window] = redisclient.Grouped(
            self._windows, "rate-windows"
        )
        self.calls = 0  # script calls made (with `asks`, the mean group size)
        self.asks = 0

    async def hit(self, key: str, rate: Rate) -> Window:
        return await self._ask((key, rate, True))

    async def peek(self, key: str, rate: Rate) -> Window:
        return await self._ask((key, rate, False))

    async def clear(self, key: str) -> None:
        await self.redis.delete(f"{self.prefix}:{key}")

    async def reset(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000)]
        if keys:
            await self.redis.delete(*keys)

    async def _windows(self, asks: list[Ask]) -> list[Window]:
        now = self.clock.now().timestamp()
        args: list[Any] = [repr(now)]
        for _, rate, count in asks:
            args += [rate.amount, rate.expiry, "1" if count else "0"]
        self.calls += 1
        self.asks += len(asks)
        keys = [f"{self.prefix}:{key}" for key, _, _ in asks]
        try:
            out = await self._lane.call("EVALSHA", _SHA, len(keys), *keys, *args)
        except NoScriptError:  # first use, or after a restart or SCRIPT FLUSH: EVAL caches it
            out = await self._lane.call("EVAL", _WINDOWS, len(keys), *keys, *args)
        windows: list[Window] = []
        for n, (_, rate, _) in enumerate(asks):
            allowed, uses, oldest = out[3 * n : 3 * n + 3]
            reset = float(oldest) + rate.expiry - now if uses else 0.0
            windows.append((bool(allowed), rate.amount - int(uses), reset))
        return windows


def make_windows(redis_url: str | None, prefix: str, clock: Clock) -> MemoryWindows | RedisWindows:
    """Redis windows under `prefix` when a URL is given, else this process's memory."""
    return RedisWindows(redis_url, prefix, clock) if redis_url else MemoryWindows(clock)
