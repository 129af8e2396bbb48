"""Rate limits, per client IP on public routes, per user otherwise: moving windows on the
gateway's Clock (parley/server/clock.py's class), in memory or in Redis (`limits`' list
layout, so its own strategies read the same windows)."""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from parley import redisclient
from parley.config import Settings
from parley.server.clock import Clock

logger = logging.getLogger("parley.gateway")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_after))
        return headers


def make_storage(settings: Settings, *, key_prefix: str | None = None) -> Storage:
    """Redis when settings.redis_dsn is set (keys under the Redis prefix), else memory."""
    dsn = settings.redis_dsn
    if not dsn:
        return MemoryStorage()
    prefix = key_prefix if key_prefix is not None else settings.redis_prefix + "ratelimit"
    storage = storage_from_string("async+" + dsn, implementation="redispy", key_prefix=prefix)
    if not isinstance(storage, Storage):
        raise TypeError(f"REDIS_URL: no asyncio rate-limit storage for {dsn!r}")
    return storage


class MemoryWindows:
    """Moving windows in this process's memory, as `limits`' MovingWindowRateLimiter over
    its MemoryStorage counts them (a hit is refused when `amount` hits are already in the
    last `expiry` seconds; a refused hit is not counted), at a fraction of the cost: that
    storage hands its expiry sweep to a worker thread after every request. On the clock's
    monotonic time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.hits: dict[str, collections.deque[float]] = {}
        self.expiries: dict[str, int] = {}
        self._sweep_at = 0.0

    def hit(self, key: str, amount: int, expiry: int) -> tuple[bool, float, int]:
        """(allowed, seconds until the window's oldest hit leaves it, remaining) after this hit."""
        now = self.clock.monotonic()
        if now >= self._sweep_at:
            self._sweep(now)
        window = self.hits.get(key)
        if window is None:
            window = self.hits[key] = collections.deque()
            self.expiries[key] = expiry
        cutoff = now - expiry
        while window and window[0] <= cutoff:
            window.popleft()
        allowed = len(window) < amount
        if allowed:
            window.append(now)
        start = window[0] if window else now
        return allowed, start + expiry - now, amount - len(window)

    def _sweep(self, now: float) -> None:
        """Once a minute, forgets keys with no hit left in their window (bounded memory)."""
        self._sweep_at = now + 60
        stale = [k for k, w in self.hits.items() if not w or w[-1] <= now - self.expiries[k]]
        for key in stale:
            del self.hits[key], self.expiries[key]


# One round trip for a hit and its window, on the list `limits`' Redis moving window keeps
# (its acquire_moving_window.lua, then moving_window.lua): newest timestamp first, at most
# `limit` long. Returns {allowed, in the window, oldest in the window or ""}.
_HIT_AND_WINDOW = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local allowed = 0
local entry = redis.call('lindex', KEYS[1], limit - 1)
if not (entry and tonumber(entry) >= now - expiry) then
    redis.call('lpush', KEYS[1], ARGV[1])
    redis.call('ltrim', KEYS[1], 0, limit - 1)
    redis.call('expire', KEYS[1], expiry)
    allowed = 1
end
local target = now - expiry
local low, high, found = 0, limit - 1, nil
while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', KEYS[1], mid))
    if value and value >= target then
        found = mid
        low = mid + 1
    else
        high = mid - 1
    end
end
if found then
    return {allowed, found + 1, redis.call('lindex', KEYS[1], found)}
end
return {allowed, 0, ""}
"""


class RedisWindows:
    """The same moving windows in Redis (shared by every gateway), one script call per hit
    where `limits` makes two (its hit, then its window)."""

    def __init__(self, url: str, prefix: str, clock: Clock) -> None:
        self.redis = redisclient.connect(url)
        self.prefix = prefix
        self.clock = clock
        self._script = self.redis.register_script(_HIT_AND_WINDOW)

    async def hit(self, key: str, amount: int, expiry: int) -> tuple[bool, float, int]:
        now = self.clock.now().timestamp()  # wall time: shared by every gateway
        allowed, count, oldest = await self._script(
            keys=[f"{self.prefix}:{key}"], args=[repr(now), amount, expiry]
        )
        start = float(oldest) if count else now
        return bool(allowed), start + expiry - now, amount - int(count)


class RateLimits:
    """Moving-window limits; when the storage fails the request is let through (and logged).

    Without Redis (and without a storage given) the windows are `MemoryWindows`."""

    def __init__(
        self, settings: Settings, *, storage: Storage | None = None, clock: Clock | None = None
    ) -> None:
        self.clock = clock or Clock()
        self.storage = storage or make_storage(settings)
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._windows: MemoryWindows | RedisWindows | None = None
        if storage is None and isinstance(self.storage, MemoryStorage):
            self._windows = MemoryWindows(self.clock)
        elif storage is None and settings.redis_dsn:
            self._windows = RedisWindows(
                settings.redis_dsn, settings.redis_prefix + "ratelimit", self.clock
            )
        self.public = parse(settings.rate_public)
        self.user = parse(settings.rate_user)

    async def check_public(self, client_ip: str) -> Decision | None:
        return await self._check(self.public, "ip", client_ip)

    async def check_user(self, user_id: int) -> Decision | None:
        return await self._check(self.user, "user", str(user_id))

    async def _check(self, item: RateLimitItem, *key: str) -> Decision | None:
        if isinstance(self._windows, MemoryWindows):
            allowed, reset, remaining = self._windows.hit(
                item.key_for(*key), item.amount, item.get_expiry()
            )
            return _decision(item, allowed, reset, remaining)
        try:
            if self._windows is not None:
                hit = await self._windows.hit(item.key_for(*key), item.amount, item.get_expiry())
                return _decision(item, *hit)
            allowed = await self._limiter.hit(item, *key)
            stats = await self._limiter.get_window_stats(item, *key)
        except Exception:  # the storage is down: fail open rather than refuse everyone
            logger.warning("rate-limit storage unavailable; request let through", exc_info=True)
            return None
        # a storage given by the caller: `limits` reads its own wall time, so this does too
        reset_after = max(0, math.ceil(stats.reset_time - self.clock.now().timestamp()))
        return Decision(allowed, item.amount, max(0, stats.remaining), reset_after)


def _decision(item: RateLimitItem, allowed: bool, wait: float, remaining: int) -> Decision:
    return Decision(allowed, item.amount, max(0, remaining), max(0, math.ceil(wait)))


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """PARLEY_TRUSTED_PROXIES entries: addresses or CIDR networks; a bad one fails at start."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def is_trusted(address: str | None, networks: list[Network]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(peer: str | None, forwarded_for: str | None, networks: list[Network]) -> str:
    """The peer, or when the peer is a trusted proxy the nearest untrusted X-Forwarded-For hop."""
    if not peer:
        return "unknown"
    if not forwarded_for or not is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
