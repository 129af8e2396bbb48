"""The hub: this process's open WebSocket connections, and the fan-out of broker events.

Each connection has a bounded send queue drained by its own writer task, which sends
everything queued at each wakeup (one task switch per burst, not per frame); a
connection whose queue is full cannot keep up and is closed with 1013 rather than
buffered. The hub dispatches on the typed events of `realtime/events.py` and imports
no domain service.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from parley.server.realtime import events
from parley.server.realtime.events import (
    BlocksChanged,
    ChatFrame,
    ChatRemoved,
    MembershipChanged,
    PresenceChanged,
    SessionsEnded,
    UsersFrame,
)
from parley.server.realtime.slots import SocketSlots

CLOSE_TRY_AGAIN = 1013
CLOSE_SESSION_ENDED = 4001
CLOSE_BANNED = 4003
SEND_WAIT = 5.0  # how long a reply may wait for room in a full queue before 1013


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str = ""


@dataclass(eq=False)
class Connection:
    user_id: int
    session_id: int
    queue_size: int
    queue: asyncio.Queue[str | Close] = field(init=False)
    chats: set[int] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    last_active: float = field(default_factory=time.monotonic)
    closing: bool = False
    send_wait: float = SEND_WAIT
    on_close: Callable[[Close], None] | None = None  # the socket's owner: force it if stuck
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_size)

    def push(self, frame: str) -> None:
        """Queues a frame; a full queue means a client that cannot keep up: close it."""
        if self.closing:
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(CLOSE_TRY_AGAIN, "send queue full")

    async def send(self, frame: str) -> None:
        """Queues a reply to this client's own request, waiting while its queue is full.

        The wait is bounded: a client that does not read for `send_wait` seconds is closed
        with 1013. A closing connection returns at once, and closing wakes every waiter.
        """
        if self.closing:
            return
        try:
            self.queue.put_nowait(frame)
            return
        except asyncio.QueueFull:
            pass
        put = asyncio.ensure_future(self.queue.put(frame))
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(closed)
        try:
            await asyncio.wait(
                (put, closed), timeout=self.send_wait, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._waiters.remove(closed)
            if not put.done():
                put.cancel()
                self.close(CLOSE_TRY_AGAIN, "send queue full")

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        self._empty()  # drop what it could not read (it will sync)
        close = Close(code, reason)
        self.queue.put_nowait(close)
        self._wake_all()  # every waiting sender returns
        if self.on_close is not None:
            self.on_close(close)

    def abort(self) -> None:
        """The socket failed under the writer: nothing more is sent; every waiter wakes."""
        self.closing = True
        self._empty()
        self._wake_all()

    def _empty(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


PresenceHook = Callable[[int, bool], Awaitable[None]]


async def _no_presence(_user_id: int, _online: bool) -> None:
    return None


class Hub:
    """Indexes local connections by user and by chat, and fans events out to them.

    It also tracks presence: a user is online while one of its connections (here, or in
    another process: `remote`, fed by PresenceChanged events) sent an application frame
    within `presence_timeout` seconds. `on_presence` hears when this process's view of a
    user flips.
    """

    def __init__(
        self,
        *,
        presence_timeout: float = 75.0,
        on_presence: PresenceHook = _no_presence,
        monotonic: Callable[[], float] = time.monotonic,
        process: str = "local",
    ) -> None:
        self.by_user: dict[int, set[Connection]] = defaultdict(set)
        self.by_chat: dict[int, set[Connection]] = defaultdict(set)
        self.presence_timeout = presence_timeout
        self.on_presence = on_presence
        self.monotonic = monotonic
        self.process = process
        self.online: set[int] = set()  # present through this process's connections
        self.remote: dict[int, set[str]] = {}  # user → other processes where it is present
        self.listeners: list[Callable[[events.Event], None]] = []
        self.slots = SocketSlots()  # sockets counted from the handshake on (ws.py)

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self.by_user.values())

    def connect(self, conn: Connection) -> None:
        """Indexes a connection (synchronous: it cannot fail half-way)."""
        conn.last_active = self.monotonic()
        self.by_user[conn.user_id].add(conn)
        for chat_id in conn.chats:
            self.by_chat[chat_id].add(conn)

    def disconnect(self, conn: Connection) -> None:
        _discard(self.by_user, conn.user_id, conn)
        for chat_id in conn.chats:
            _discard(self.by_chat, chat_id, conn)

    async def register(self, conn: Connection) -> None:
        self.connect(conn)
        await self._update_presence(conn.user_id)

    async def unregister(self, conn: Connection) -> None:
        self.disconnect(conn)
        await self._update_presence(conn.user_id)

    async def touch(self, conn: Connection) -> None:
        """An application frame arrived: the connection counts as present again."""
        conn.last_active = self.monotonic()
        if conn.user_id not in self.online:
            await self._update_presence(conn.user_id)

    def is_local_online(self, user_id: int) -> bool:
        deadline = self.monotonic() - self.presence_timeout
        return any(c.last_active > deadline for c in self.by_user.get(user_id, ()))

    def is_online(self, user_id: int) -> bool:
        return bool(self.remote.get(user_id)) or self.is_local_online(user_id)

    async def sweep_presence(self) -> None:
        """Marks offline the users whose connections all went quiet."""
        for user_id in tuple(self.online):
            await self._update_presence(user_id)

    async def _update_presence(self, user_id: int) -> None:
        online = self.is_local_online(user_id)
        if online == (user_id in self.online):
            return
        if online:
            self.online.add(user_id)
        else:
            self.online.discard(user_id)
        await self.on_presence(user_id, online)

    def connections_of(self, user_id: int) -> set[Connection]:
        return self.by_user.get(user_id, set())

    def session_ids(self) -> set[int]:
        return {conn.session_id for conns in self.by_user.values() for conn in conns}

    async def handle(self, event: events.Event | dict[str, Any]) -> None:
        typed = events.from_wire(event)
        if typed is None:
            return
        for listener in self.listeners:  # caches first: they must be exact before use
            listener(typed)
        handler = _HANDLERS.get(type(typed))
        if handler is not None:
            handler(self, typed)

    def _on_chat(self, event: Any) -> None:
        frame, sender, skip = event.frame, event.sender_id, event.skip_user
        for conn in tuple(self.by_chat.get(event.chat_id, ())):
            if conn.user_id == skip or (sender is not None and sender in conn.blocked):
                continue
            conn.push(frame)

    def _on_users(self, event: Any) -> None:
        for user_id in event.user_ids:
            for conn in tuple(self.connections_of(user_id)):
                conn.push(event.frame)

    def _on_membership(self, event: Any) -> None:
        chat_id, joined = event.chat_id, event.joined
        for user_id in event.user_ids:
            for conn in self.connections_of(user_id):
                if joined:
                    conn.chats.add(chat_id)
                    self.by_chat[chat_id].add(conn)
                else:
                    conn.chats.discard(chat_id)
                    _discard(self.by_chat, chat_id, conn)

    def _on_chat_removed(self, event: Any) -> None:
        for conn in self.by_chat.pop(event.chat_id, set()):
            conn.chats.discard(event.chat_id)

    def _on_blocks(self, event: Any) -> None:
        for conn in self.connections_of(event.user_id):
            conn.blocked = set(event.blocked)

    def _on_sessions_ended(self, event: Any) -> None:
        code = CLOSE_BANNED if event.banned else CLOSE_SESSION_ENDED
        session_ids, keep = event.session_ids, event.keep
        for conn in tuple(self.connections_of(event.user_id)):
            if conn.session_id == keep:
                continue
            if session_ids is None or conn.session_id in session_ids:
                conn.close(code, "banned" if code == CLOSE_BANNED else "session ended")

    def _on_presence(self, event: Any) -> None:
        if event.process == self.process:
            return
        where = self.remote.setdefault(event.user_id, set())
        if event.online:
            where.add(event.process)
        else:
            where.discard(event.process)
            if not where:
                del self.remote[event.user_id]

    def drop_process(self, process: str) -> list[int]:
        """Forgets another process (its presence expired); the users present only there."""
        gone = []
        for user_id, where in tuple(self.remote.items()):
            if process in where:
                where.discard(process)
                if not where:
                    del self.remote[user_id]
                    gone.append(user_id)
        return gone

    def close_sessions(self, session_ids: set[int], code: int) -> None:
        for conns in tuple(self.by_user.values()):
            for conn in tuple(conns):
                if conn.session_id in session_ids:
                    conn.close(code)

    def close_all(self, code: int) -> None:
        for conns in tuple(self.by_user.values()):
            for conn in tuple(conns):
                conn.close(code, "server shutting down")


_HANDLERS: dict[type[Any], Callable[[Hub, Any], None]] = {
    ChatFrame: Hub._on_chat,
    UsersFrame: Hub._on_users,
    MembershipChanged: Hub._on_membership,
    ChatRemoved: Hub._on_chat_removed,
    BlocksChanged: Hub._on_blocks,
    SessionsEnded: Hub._on_sessions_ended,
    PresenceChanged: Hub._on_presence,
}


def _discard(index: dict[int, set[Connection]], key: int, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]


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
        item = await queue.get()
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
