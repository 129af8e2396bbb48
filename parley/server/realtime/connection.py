"""One WebSocket connection as the hub sees it: its bounded send queue, its direct writes
while the client keeps up, and the writer loop that drains the queue when it does not.

A frame is written straight to the connection's transport while the client keeps up; a
connection whose transport is paused, or whose writer still has frames, gets the frame in
its bounded queue instead, drained by its own writer task (`drain`), which sends
everything queued at each wakeup in one write; a connection whose queue is full cannot
keep up and is closed with 1013 rather than buffered. Frames never overtake each other:
the direct write is taken only when the queue is empty and the writer holds nothing.
Within one turn of the event loop a socket's frames after the first are held and written
together when the turn ends (`Outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from parley.wsserver import text_frame

CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_SESSION_ENDED = 4001
CLOSE_BANNED = 4003
SEND_WAIT = 5.0  # how long a reply may wait for room in a full queue before 1013
HOLD_LIMIT = 64 * 1024  # bytes one loop turn may hold back for a socket; past it, queue
_NO_BLOCKS: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str = ""


class Connection:
    """One open socket as the hub sees it (slots: thousands are held at once).

    The send queue and its writer exist only once a frame has to wait (a client that
    fell behind, or a socket without direct writes): `_queued` is where a subclass
    starts its writer; most connections never need one.
    """

    __slots__ = (
        "__weakref__",
        "_queue",
        "_waiters",
        "blocked",
        "busy",
        "chats",
        "closing",
        "held",
        "held_bytes",
        "last_active",
        "on_close",
        "outbox",
        "queue_size",
        "send_wait",
        "session_id",
        "turn",
        "user_id",
        "write_now",
    )

    def __init__(
        self,
        user_id: int,
        session_id: int,
        queue_size: int,
        chats: set[int] | None = None,
        blocked: AbstractSet[int] = _NO_BLOCKS,
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.queue_size = queue_size
        self._queue: asyncio.Queue[str | Close] | None = None  # made when a frame must wait
        self.chats: set[int] = set() if chats is None else chats
        self.blocked: AbstractSet[int] = blocked
        self.last_active = time.monotonic()
        self.closing = False
        self.send_wait = SEND_WAIT
        # The socket's owner, told when it closes (to force it if stuck).
        self.on_close: Callable[[Close], None] | None = None
        # Writes whole frames to the socket now if its client keeps up (False: queue
        # them); None without a transport of our own (then every frame goes through the
        # queue). (`force`: even over the high-water mark, for what a loop turn held back.)
        self.write_now: Callable[[bytes, bool], bool] | None = None
        self.outbox: Outbox | None = None  # coalesces this loop turn's frames after its first
        self.busy = False  # the writer task holds frames taken from the queue, not yet sent
        self.turn = -1  # the outbox's turn in which a frame was last written directly
        self.held: list[bytes] | None = None  # frames of this turn after the first, in order
        self.held_bytes = 0
        self._waiters: list[asyncio.Future[None]] | None = None

    @property
    def queue(self) -> asyncio.Queue[str | Close]:
        """The bounded send queue, made on first use."""
        queue = self._queue
        if queue is None:
            queue = self._queue = asyncio.Queue(self.queue_size)
        return queue

    @property
    def queued(self) -> bool:
        """Frames wait in the send queue."""
        queue = self._queue
        return queue is not None and not queue.empty()

    def _queued(self) -> None:
        """A frame was queued: the owner's writer must run (see ws.py)."""

    def _wrote(self, frame: str, data: bytes | None) -> bool:
        """Writes the frame directly when nothing is waiting ahead of it and the
        transport has room; False when it must be queued.

        The first frame of a loop turn is written at once; the ones that follow in the
        same turn (a batch of messages to the same chat) are held and written together
        at its end, one `transport.write` instead of one each. A turn holds at most
        `HOLD_LIMIT` bytes for a socket (a `sync` sends without yielding): past it,
        frames queue behind the held ones, and the queue's bound applies.
        """
        write_now = self.write_now
        if write_now is None:
            return False
        held = self.held
        if held is not None:  # later in a turn that already wrote: after those
            if self.held_bytes > HOLD_LIMIT:
                self.release()  # out now, so that nothing queued can go first
                return False
            data = text_frame(frame) if data is None else data
            held.append(data)
            self.held_bytes += len(data)
            return True
        if self.busy or self.queued:
            return False
        outbox = self.outbox
        if outbox is not None and self.turn == outbox.turn:
            data = text_frame(frame) if data is None else data
            self.held, self.held_bytes = [data], len(data)
            outbox.held.append(self)
            return True
        if not write_now(text_frame(frame) if data is None else data, False):
            return False
        if outbox is not None:
            self.turn = outbox.turn
            outbox.wrote()
        return True

    def release(self) -> None:
        """Writes the frames held back this turn (even over the high-water mark: the
        socket had room for the turn's first frame, and a turn holds a bounded amount)."""
        frames, self.held, self.held_bytes = self.held, None, 0
        if frames and not self.closing and self.write_now is not None:
            self.write_now(frames[0] if len(frames) == 1 else b"".join(frames), True)

    def push(self, frame: str, data: bytes | None = None) -> None:
        """Sends a frame (`data`: the same, already framed); when the client does not keep
        up it is queued, and a full queue means a client that cannot: close it."""
        if self.closing or self._wrote(frame, data):
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(CLOSE_TRY_AGAIN, "send queue full")
            return
        self._queued()

    async def send(self, frame: str) -> None:
        """Queues a reply to this client's own request, waiting while its queue is full.

        The wait is bounded: a client that does not read for `send_wait` seconds is closed
        with 1013. A closing connection returns at once, and closing wakes every waiter.
        """
        if self.closing or self._wrote(frame, None):
            return
        try:
            self.queue.put_nowait(frame)
            self._queued()
            return
        except asyncio.QueueFull:
            pass
        put = asyncio.ensure_future(self.queue.put(frame))
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(closed)
        try:
            await asyncio.wait(
                (put, closed), timeout=self.send_wait, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiters.remove(closed)
            if not put.done():
                put.cancel()
                self.close(CLOSE_TRY_AGAIN, "send queue full")

    def _wake_all(self) -> None:
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        self._empty()  # drop what it could not read (it will sync)
        close = Close(code, reason)
        self.queue.put_nowait(close)
        self._queued()  # the writer sends the close frame (started now if there was none)
        self._wake_all()  # every waiting sender returns
        if self.on_close is not None:
            self.on_close(close)

    def abort(self) -> None:
        """The socket failed under the writer: nothing more is sent; every waiter wakes."""
        self.closing = True
        self._empty()
        self._wake_all()

    def _empty(self) -> None:
        queue = self._queue
        while queue is not None and not queue.empty():
            queue.get_nowait()


class Outbox:
    """Ends the loop turns of direct writes: a callback queued after the first direct
    write of a turn writes what each connection held back since, in one write each."""

    def __init__(self) -> None:
        self.turn = 0
        self.held: list[Connection] = []
        self._due = False

    def wrote(self) -> None:
        if not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self.end_turn)

    def end_turn(self) -> None:
        self._due = False
        self.turn += 1
        held, self.held = self.held, []
        for conn in held:
            conn.release()


async def drain(
    conn: Connection,
    send_text: Callable[[str], Awaitable[Any]],
    send_many: Callable[[list[str]], Awaitable[Any]] | None = None,
) -> Close:
    """The writer loop of one connection: sends queued frames until a Close comes.

    Everything queued at a wakeup goes out together (through `send_many` when given), so
    a burst of fan-out costs this task one switch, not one per frame.
    """
    queue = conn.queue
    while True:
        conn.busy = False  # nothing held: frames may be written directly again
        item = await queue.get()
        conn.busy = True
        if isinstance(item, Close):
            return item
        if queue.empty():
            await send_text(item)
            continue
        batch = [item]
        close: Close | None = None
        while not queue.empty():
            more = queue.get_nowait()
            if isinstance(more, Close):
                close = more
                break
            batch.append(more)
        if send_many is not None:
            await send_many(batch)
        else:
            for frame in batch:
                await send_text(frame)
        if close is not None:
            return close


async def cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
