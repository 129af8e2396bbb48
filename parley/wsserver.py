"""The WebSocket protocol the server and the gateway run under uvicorn.

uvicorn's sans-I/O implementation (the fastest measured: docs/performance.md) with one
fix: a protocol failure (a message over the size limit sent in many fragments, invalid
UTF-8) writes its close frame and keeps reading for a moment before closing the TCP
connection. Closing with unread data would reset it, and the client would see 1006
instead of 1009 or 1007. It can refuse a handshake with an HTTP answer (ASGI denial
response), as the legacy implementation could.

It also lets the application write frames it framed itself (`FRAMES_EXTENSION`): a
server-to-client frame is unmasked, so one event's frame bytes (`text_frame`) can be
written as they are to every recipient, without going through the ASGI `send` and the
`websockets` framing once per recipient.
"""

from __future__ import annotations

import asyncio
import gc
import struct
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

FAILED_READ_GRACE = 2.0  # seconds a failed connection is still read (and discarded)

FRAMES_EXTENSION = "parley.frames"
"""Scope extension of an accepted socket without per-message compression:
{"write_now": callable(bytes, force) -> bool, "write": async callable(bytes)}; both take
whole frames (`text_frame`). `write_now` writes at once while the client keeps up and
returns False (writing nothing) when its transport is paused (unless `force`) or the
socket is closing; `write` waits for room first, and raises `ClientDisconnected` once the
connection is lost."""

_OPEN = State.OPEN
_SMALL_HEADERS = [bytes((0x81, n)) for n in range(126)]


def freeze_startup_heap(full_every: int = 1000) -> None:
    """Tunes the cyclic garbage collector for a process that holds thousands of sockets.

    - Everything alive at startup (modules, the app, SQLAlchemy's and pydantic's tables)
      is moved out of the collector's reach (`gc.freeze()`): it lives as long as the
      process, and a full collection no longer walks it. Measured on the server after the
      bench's seeding: a full collection paused the loop 125 ms before, 18.5 ms after.
    - A full (generation 2) collection walks every live container, and at 10,000 sockets
      there are millions: it stopped the event loop for 0.5 to 1.3 s, every 2 to 30 s
      while people connected or chatted, and every message waiting behind it was that
      late. Python starts one after 10 collections of the middle generation (when a
      quarter of the old generation is new); `full_every` (`PARLEY_GC_FULL_EVERY`) raises
      that count, so full collections come about a hundred times less often. Young
      collections are left at Python's threshold: they stay a few milliseconds each. What
      waits longer for its collection is garbage in reference cycles that lived through
      two young collections: little, in these processes (a few thousand objects a minute).

    docs/performance.md, "Garbage collection", and docs/capacity.md have the figures.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, full_every)


def text_frame(text: str) -> bytes:
    """`text` as one unmasked, final server-to-client text frame (RFC 6455, 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return _SMALL_HEADERS[size] + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def _enlist(
    waiters: list[asyncio.Future[None]] | None,
) -> tuple[list[asyncio.Future[None]], asyncio.Future[None]]:
    """A new future appended to `waiters`, the list made on first use (most never wait)."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if waiters is None:
        waiters = []
    waiters.append(waiter)
    return waiters, waiter


class Flag:
    """What uvicorn uses of `asyncio.Event` (set, clear, is_set, wait) without its deque:
    an idle socket has one, and nobody waits on it while its client keeps up."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiters, waiter = _enlist(self._waiters)
        self._waiters = waiters
        try:
            await waiter
            return True
        finally:
            if waiter in waiters:
                waiters.remove(waiter)


class Inbox:
    """What uvicorn uses of its receive `asyncio.Queue` (put_nowait, get, empty): a list,
    not the three deques of a Queue (an ASGI app has one reader: it waits in `get`)."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        for getter in self._getters or ():
            if not getter.done():
                getter.set_result(None)
                return

    async def get(self) -> Any:
        while not self._items:
            getters, getter = _enlist(self._getters)
            self._getters = getters
            try:
                await getter
            except BaseException:
                if getter.done() and not getter.cancelled() and self._items:
                    self._wake_next(getter)  # its wake-up goes to the next reader
                raise
            finally:
                getters.remove(getter)
        return self._items.pop(0)

    def _wake_next(self, skip: asyncio.Future[None]) -> None:
        for getter in self._getters or ():
            if getter is not skip and not getter.done():
                getter.set_result(None)
                return

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class SansIOWebSocket(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lighter stand-ins for uvicorn's receive queue and write flag: thousands of
        # idle sockets each hold one of both.
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and not self.conn.extensions:  # frames are not compressed
            scope["extensions"][FRAMES_EXTENSION] = {
                "write_now": self.write_frames_now,
                "write": self.write_frames,
            }

    def write_frames_now(self, data: bytes, force: bool = False) -> bool:
        """Writes whole frames if the client keeps up (or, with `force`, even when it is
        over its high-water mark): no task switch, no queue. False when closing."""
        if self.disconnected or self.conn.state is not _OPEN or self.transport.is_closing():
            return False
        if not force and not self.writable.is_set():
            return False
        self.transport.write(data)
        return True

    async def write_frames(self, data: bytes) -> None:
        """Writes whole frames once the transport has room (the slow client's path)."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if self.conn.state is _OPEN and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self.close_sent and self.conn.parser_exc is not None:
            return  # failed: discard what the client still sends until we close
        super().data_received(data)

    def handle_parser_exception(self) -> None:
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(FAILED_READ_GRACE, self._close_transport)

    def eof_received(self) -> None:
        if self.close_sent:
            self._close_transport()

    def _close_transport(self) -> None:
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # a reader that never drains its close frame
        else:
            self.transport.close()
