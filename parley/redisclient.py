"""The one way Parley opens a Redis client (server and gateway alike), and `Lane`: one
connection of it held for commands sent one after another."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ResponseError

CONNECTIONS = 32  # per client and process: every call Parley makes is one short command
WAIT = 5.0  # seconds a call may wait for a free connection before it fails


def connect(url: str) -> Any:
    """A client whose calls wait for a free connection (up to WAIT seconds) when all
    CONNECTIONS are busy, instead of failing at once with "Too many connections": a
    burst of sends, each with its rate-limit call, queues for a moment."""
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(url, max_connections=CONNECTIONS, timeout=WAIT)
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool


class Lane:
    """One connection taken from `redis`'s pool and kept, for calls made one after another
    (a rate-limit group, a publish): no pool checkout and release, no client layers per
    command, about half of redis-py's CPU per command (docs/performance.md, "Redis
    commands on a held connection"). Concurrent callers queue on a lock, each call a
    round trip.

    A call that fails midway (connection error, timeout, cancellation) disconnects the
    connection, so a half-read reply is never read by the next call: that one reconnects.
    There is no retry: the error propagates as redis-py raises it."""

    def __init__(self, redis: Any) -> None:
        self._pool = redis.connection_pool
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def call(self, *args: Any) -> Any:
        """The reply to one command as the connection reads it: what `Redis.execute_command`
        answers for commands without a response callback (EVALSHA, EVAL, PUBLISH).
        Raises the command's ResponseError (NoScriptError...) with the connection intact."""
        async with self._lock:
            conn = self._conn or await self._take()
            try:
                if not conn.is_connected or await conn.can_read():
                    await self._renew(conn)  # closed by Redis meanwhile (a restart, a kill)
                await conn.send_command(*args)
                return await conn.read_response()
            except ResponseError:
                raise  # an error reply, read whole
            except BaseException:
                await conn.disconnect(nowait=True)
                raise

    async def close(self) -> None:
        """Gives the connection back to the pool, after the call in flight if any."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await self._pool.release(conn)

    async def _take(self) -> Any:
        self._conn = await self._pool.get_connection()
        return self._conn

    async def _renew(self, conn: Any) -> None:
        await conn.disconnect()
        await conn.connect()
