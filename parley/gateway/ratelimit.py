"""Rate limits of the gateway, per client IP on public routes, per user otherwise:
parley/ratewindows.py's moving windows on the gateway's Clock, in memory or in Redis (under
the settings' prefix + "ratelimit", shared by every gateway), answered with RateLimit
headers; and the client IP behind trusted proxies."""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

from parley.config import Settings
from parley.ratewindows import MemoryWindows, Rate, Window, make_windows
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
