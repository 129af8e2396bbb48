"""The one way Parley opens a Redis client (server and gateway alike)."""

from __future__ import annotations

from typing import Any

CONNECTIONS = 32  # per client and process: every call Parley makes is one short command
WAIT = 5.0  # seconds a call may wait for a free connection before it fails


def connect(url: str) -> Any:
    """A client whose calls wait for a free connection (up to WAIT seconds) when all
    CONNECTIONS are busy, instead of failing at once with "Too many connections": a
    burst of sends, each with its rate-limit call, queues for a moment."""
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(url, max_connections=CONNECTIONS, timeout=WAIT)
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool
