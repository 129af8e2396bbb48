"""A lean HTTP/1.1 client for the gateway's proxy: keep-alive connections to the upstream
servers, requests written as bytes from the ASGI scope, responses parsed by httptools.

It does only what the proxy needs: no redirects, no cookies, no decoding, no default
headers; request and response headers stay bytes. Per request it costs a fraction of
what httpx did (docs/performance.md, "History pages"). Idle connections are reused
newest first; one the server closed while idle is dropped when its close arrives, and a
request whose reused connection closes before any byte of an answer is sent again once
on a new connection (only when its body can be replayed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from functools import partial
from typing import cast

import httptools

_HIGH_WATER = 256 * 1024  # response bytes buffered before reading from the upstream pauses


class UpstreamError(Exception):
    """The request could not be answered by this upstream."""


class ConnectFailed(UpstreamError):
    """No TCP connection could be made (the upstream is down)."""


class PoolFull(UpstreamError):
    """No connection slot freed within the connect timeout (our limit, not its health)."""


class ReadTimeout(UpstreamError):
    """The upstream did not answer (or send more of its answer) within the read timeout."""


class Broken(UpstreamError):
    """The connection failed or the answer was not HTTP."""


class _Stale(Broken):
    """A reused connection closed before any byte of the answer: safe to send again."""


def _expire(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_exception(ReadTimeout("the upstream did not answer in time"))


class _Connection(asyncio.Protocol):
    """One upstream connection; parses one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self.on_idle_close: Callable[[_Connection], None] | None = None  # while parked
        self._parser = httptools.HttpResponseParser(self)
        self._reset()
        self._writable = asyncio.Event()
        self._writable.set()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.head_done = False
        self.keep_alive = False
        self.complete = False
        self.got_bytes = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.error: UpstreamError | None = None
        self.wake: asyncio.Future[None] | None = None

    # --- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(Broken("malformed response"))
            self.close()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.on_idle_close is not None:  # closed by the server while idle: unparked
            self.on_idle_close(self)
            self.on_idle_close = None
        if not self.complete:
            if self.head_done and exc is None and not self._has_length():
                self.complete = True  # a body that ends with the connection
            elif not self.got_bytes:
                self._fail(_Stale("connection closed before an answer"))
            else:
                self._fail(Broken("connection closed mid-answer"))
        self._writable.set()
        self._notify()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:  # 1xx: an interim answer; the real one follows
            self.headers = []
            return
        self.head_done = True
        self.keep_alive = self._parser.should_keep_alive()  # only right before the body
        self._notify()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._notify()

    def on_message_complete(self) -> None:
        if self.status >= 200:
            self.complete = True
            self._notify()

    # --- used by the client --------------------------------------------------------------

    def _has_length(self) -> bool:
        return any(n in (b"content-length", b"transfer-encoding") for n, _ in self.headers)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error

    def _notify(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    async def wait(self, seconds: float) -> None:
        """Until something happens (head, body, end, failure), at most `seconds`."""
        loop = asyncio.get_running_loop()
        wake = self.wake = loop.create_future()
        timer = loop.call_later(seconds, _expire, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self.wake = None

    async def drain(self) -> None:
        await self._writable.wait()
        if self.closed:
            raise Broken("connection closed while sending")

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) > 1 else self.chunks.popleft()
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.closed
            and self.error is None
            and not self.chunks
            and self.keep_alive
        )

    def start(self) -> None:
        self._reset()
        self._parser = httptools.HttpResponseParser(self)
        self.used = True

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class Response:
    """An upstream answer: status and headers now, the body as it comes (`chunks`)."""

    def __init__(self, client: UpstreamClient, key: str, conn: _Connection, head: bool) -> None:
        self._client, self._key, self._conn, self._head = client, key, conn, head
        self.status = conn.status
        self.headers = conn.headers
        self._released = False

    @property
    def complete(self) -> bool:
        """The whole body is here already (`body()` returns it without waiting)."""
        return self._head or self._conn.complete

    def body(self) -> bytes:
        return b"" if self._head or not self._conn.chunks else self._conn.take()

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if self._head:
            return
        while True:
            if conn.chunks:
                yield conn.take()
                continue
            if conn.complete:
                return
            if conn.error is not None:
                raise conn.error
            await conn.wait(self._client.read_timeout)

    def release(self) -> None:
        """Back to the pool when the answer was read to its end; closed otherwise."""
        if self._released:
            return
        self._released = True
        reuse = not self._head and self._conn.reusable()
        self._client._release(self._key, self._conn, reuse)


class UpstreamClient:
    """Keep-alive connections per upstream; at most `max_connections` requests at a time."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        max_idle: int = 200,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[str, list[_Connection]] = {}
        self._idle_count = 0
        self.opened = 0  # connections made (a test of reuse reads it)

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    async def request(
        self,
        host: str,
        port: int,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        *,
        chunked: bool = False,
        is_head: bool = False,
    ) -> Response:
        """Sends `head` (request line and headers, ending with the blank line) and the
        body; returns once the answer's headers are in. The caller must `release()` it."""
        if self._slots.locked():  # all taken: wait for one, at most the connect timeout
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolFull("no connection slot") from None
        else:
            await self._slots.acquire()  # returns at once
        key = f"{host}:{port}"
        try:
            replayable = body is None or isinstance(body, bytes)
            while True:
                conn, reused = await self._connection(key, host, port)
                try:
                    await self._send(conn, head, body, chunked=chunked)
                    await self._head(conn)
                except _Stale:
                    conn.close()
                    if reused and replayable:
                        continue  # the server closed an idle connection: a new one
                    raise
                except BaseException:
                    conn.close()
                    raise
                return Response(self, key, conn, is_head)
        except BaseException:
            self._slots.release()
            raise

    async def _connection(self, key: str, host: str, port: int) -> tuple[_Connection, bool]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            conn.on_idle_close = None
            if not conn.closed:
                conn.start()
                return conn, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Connection, host, port)
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(str(exc)) from exc
        self.opened += 1
        conn.start()
        return conn, False

    async def _send(
        self,
        conn: _Connection,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        *,
        chunked: bool,
    ) -> None:
        transport = conn.transport
        assert transport is not None
        if conn.closed:
            raise _Stale("closed")
        if body is None or isinstance(body, bytes):
            transport.write(head + body if body else head)
            return
        transport.write(head)
        async for chunk in body:
            if conn.error is not None:  # answered (or broken) before the body ended
                break
            if chunked:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            await conn.drain()
        else:
            if chunked:
                transport.write(b"0\r\n\r\n")

    async def _head(self, conn: _Connection) -> None:
        while not conn.head_done:
            if conn.error is not None:
                raise conn.error
            await conn.wait(self.read_timeout)

    def _unpark(self, key: str, conn: _Connection) -> None:
        idle = self._idle.get(key, [])
        if conn in idle:
            idle.remove(conn)
            self._idle_count -= 1

    def _release(self, key: str, conn: _Connection, reuse: bool) -> None:
        self._slots.release()
        if reuse and self._idle_count < self.max_idle:
            self._idle.setdefault(key, []).append(conn)
            self._idle_count += 1
            conn.on_idle_close = partial(self._unpark, key)
        else:
            with contextlib.suppress(Exception):
                conn.close()
