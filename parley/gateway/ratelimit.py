"""Rate limits of the gateway, per client IP on public routes, per user otherwise:
parley/ratewindows.py's moving windows on the gateway's Clock, in memory or in Redis (under
the settings' prefix + "ratelimit", shared by every gateway), answered with RateLimit
headers."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from parley.clock import Clock
from parley.config import Settings
from parley.ratewindows import MemoryWindows, Rate, Window, make_windows

logger = logging.getLogger("parley.gateway")


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


class RateLimits:
    """The gateway's two limits; when Redis fails the request is let through (and logged)."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._windows = make_windows(
            settings.redis_dsn, settings.redis_prefix + "ratelimit", self.clock
        )
        self.public = Rate.parse(settings.rate_public)
        self.user = Rate.parse(settings.rate_user)

    async def check_public(self, client_ip: str) -> Decision | None:
        return await self._check(self.public, "ip", client_ip)

    async def check_user(self, user_id: int) -> Decision | None:
        return await self._check(self.user, "user", user_id)

    async def _check(self, rate: Rate, name: str, key: str | int) -> Decision | None:
        windows = self._windows
        if isinstance(windows, MemoryWindows):
            return _decision(rate, windows.hit(rate.key_for(name, key), rate))
        try:
            window = await windows.hit(rate.key_for(name, key), rate)
        except Exception:  # Redis is down: fail open rather than refuse everyone
            logger.warning("rate-limit storage unavailable; request let through", exc_info=True)
            return None
        return _decision(rate, window)


def _decision(rate: Rate, window: Window) -> Decision:
    allowed, remaining, reset = window
    return Decision(allowed, rate.amount, max(0, remaining), max(0, math.ceil(reset)))
