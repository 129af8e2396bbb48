"""Which upstream server answers next: round-robin with passive health (one that fails is
skipped for a while)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger("parley.gateway")


@dataclass(slots=True)
class Upstream:
    url: str
    down_until: float = 0.0

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


class UpstreamPool:
    """Round-robin over upstreams; one that fails is skipped for `fail_timeout` seconds."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        fail_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstreams = [Upstream(url.rstrip("/")) for url in urls]
        if not self.upstreams:
            raise ValueError("PARLEY_UPSTREAMS: at least one upstream is needed")
        self._fail_timeout = fail_timeout
        self._clock = clock
        self._turn = itertools.count()

    def candidates(self) -> list[Upstream]:
        """Healthy upstreams in round-robin order, then those resting, soonest back first."""
        start = next(self._turn) % len(self.upstreams)
        ordered = self.upstreams[start:] + self.upstreams[:start]
        now = self._clock()
        healthy = [u for u in ordered if u.down_until <= now]
        resting = sorted((u for u in ordered if u.down_until > now), key=lambda u: u.down_until)
        return healthy + resting

    def mark_failed(self, upstream: Upstream) -> None:
        if upstream.down_until <= self._clock():
            logger.warning("upstream %s failed; skipped for %ss", upstream.url, self._fail_timeout)
        upstream.down_until = self._clock() + self._fail_timeout

    def mark_ok(self, upstream: Upstream) -> None:
        upstream.down_until = 0.0

    def is_up(self, upstream: Upstream) -> bool:
        return upstream.down_until <= self._clock()
