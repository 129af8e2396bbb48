"""The one way Parley opens a Redis client (server and gateway alike; `connect_subscriber`
for a pub/sub connection); `Lane`: one connection of it held for commands sent one after
another; `Grouped`: calls made while one is in flight, sent together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from redis.exceptions import ResponseError

CONNECTIONS = 32  # per client and process: every call Parley makes is one short command
WAIT = 5.0  # seconds a call may wait for a free connection before it fails
T = TypeVar("T")
R = TypeVar("R")


def connect(url: str) -> Any:
    """A client whose calls wait for a free connection (up to WAIT seconds) when all
    CONNECTIONS are busy, instead of failing at once with "Too many connections": a
    burst of sends, each with its rate-limit call, queues for a moment."""
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(url, max_connections=CONNECTIONS, timeout=WAIT)
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool


class Grouped(Generic[T, R]):
    """Calls grouped while one is in flight: a call made when none is goes at once, alone;
    those made meanwhile wait, then go together in one `send` (the items in call order,
    a result per item, in order). A waiting call cancelled before its group goes is left
    out. When `send` fails, every call of the group gets the error (or is cancelled, for
    a cancellation). The rate-limit windows group their asks into one script call with
    it, a `Lane` its commands into one pipelined write."""

    def __init__(self, send: Callable[[list[T]], Awaitable[list[R]]], name: str) -> None:
        self._send = send
        self._name = name
        self.busy = False  # a group is in flight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._flush: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        if self.busy:  # a group is in flight: this call goes with the next one
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._waiting.append((item, future))
            return await future
        self.busy = True
        try:
            [result] = await self._send([item])
            return result
        finally:
            self._next()

    def cancel(self) -> None:
        """Stops a group that is going (its calls are cancelled)."""
        if self._flush is not None:
            self._flush.cancel()

    def _next(self) -> None:
        """After a group: the calls that gathered meanwhile go, or nothing is in flight."""
        group = [(item, future) for item, future in self._waiting if not future.done()]
        self._waiting = []
        if not group:
            self.busy = False
            return
        self._flush = asyncio.create_task(self._send_group(group), name=self._name)

    async def _send_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._send([item for item, _ in group])
        except BaseException as exc:
            for _, future in group:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(group, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._next()


class Lane:
    """One connection taken from `redis`'s pool and kept, for short commands (a rate-limit
    group, a publish): no pool checkout and release, no client layers per command
    (docs/performance.md, "Redis commands on a held connection"). The calls made while
    one is in flight wait, then go together (`Grouped`), pipelined: one write, the
    replies read in order.

    A call that fails midway (connection error, timeout, cancellation) disconnects the
    connection, so a half-read reply is never read by a later call: the next one
    reconnects. There is no retry: the error propagates as redis-py raises it, to every
    call of the group."""

    def __init__(self, redis: Any) -> None:
        self._pool = redis.connection_pool
        self._conn: Any = None
        self._calls: Grouped[tuple[Any, ...], Any] = Grouped(self._send, "redis-lane")

    async def call(self, *args: Any) -> Any:
        """The reply to one command as the connection reads it: what `Redis.execute_command`
        answers for commands without a response callback (EVALSHA, EVAL, PUBLISH).
        Raises the command's ResponseError (NoScriptError...) with the connection intact."""
        reply = await self._calls(args)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def close(self) -> None:
        """Gives the connection back to the pool; a call in flight is cut instead (its
        connection disconnected and kept out of the pool: it is still being read)."""
        self._calls.cancel()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._calls.busy:
            await conn.disconnect()
        else:
            await self._pool.release(conn)

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The replies, in order; an error reply as its ResponseError."""
        conn = self._conn or await self._take()
        try:
            if not conn.is_connected or await conn.can_read():
                await self._renew(conn)  # closed by Redis meanwhile (a restart, a kill)
            await conn.send_packed_command(conn.pack_commands(commands))
            return [await self._read(conn) for _ in commands]
        except BaseException:
            await conn.disconnect(nowait=True)
            raise

    @staticmethod
    async def _read(conn: Any) -> Any:
        try:
            return await conn.read_response()
        except ResponseError as error:  # an error reply, read whole
            return error

    async def _take(self) -> Any:
        self._conn = await self._pool.get_connection()
        return self._conn

    async def _renew(self, conn: Any) -> None:
        await conn.disconnect()
        await conn.connect()


def connect_subscriber(url: str, *, name: str) -> Any:
    """A client for one pub/sub connection, named `name` (as `CLIENT LIST` shows it), without
    redis-py's retries: those reconnect and subscribe again silently, so the events published
    meanwhile would be lost unnoticed. Its owner reconnects itself, knowing what it missed."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    client.connection_pool.connection_kwargs["client_name"] = name  # over the URL's, if any
    return client
