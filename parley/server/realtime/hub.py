"""The hub: this process's open WebSocket connections, and the fan-out of broker events.

Each connection has a bounded send queue drained by its own writer task; a connection
whose queue is full cannot keep up and is closed with 1013 rather than buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from parley.server.realtime.broker import Event
from parley.server.realtime.slots import SocketSlots

CLOSE_TRY_AGAIN = 1013
CLOSE_SESSION_ENDED = 4001
CLOSE_BANNED = 4003


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
        """Queues a reply to this client's own request, waiting while its queue is full."""
        if not self.closing:
            await self.queue.put(frame)

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        while not self.queue.empty():  # drop what it could not read; it will sync
            self.queue.get_nowait()
        self.queue.put_nowait(Close(code, reason))


PresenceHook = Callable[[int, bool], Awaitable[None]]


async def _no_presence(_user_id: int, _online: bool) -> None:
    return None


class Hub:
    """Indexes local connections by user and by chat, and fans events out to them.

    It also tracks presence for the users it holds: online while one of their connections
    sent an application frame within `presence_timeout` seconds.
    """

    def __init__(
        self, *, presence_timeout: float = 75.0, on_presence: PresenceHook = _no_presence
    ) -> None:
        self.by_user: dict[int, set[Connection]] = defaultdict(set)
        self.by_chat: dict[int, set[Connection]] = defaultdict(set)
        self.presence_timeout = presence_timeout
        self.on_presence = on_presence
        self.online: set[int] = set()
        self.slots = SocketSlots()  # sockets counted from the handshake on (ws.py)

    @property
    def connection_count(self) -> int:
        return sum(len(conns) for conns in self.by_user.values())

    async def register(self, conn: Connection) -> None:
        self.by_user[conn.user_id].add(conn)
        for chat_id in conn.chats:
            self.by_chat[chat_id].add(conn)
        await self._update_presence(conn.user_id)

    async def unregister(self, conn: Connection) -> None:
        _discard(self.by_user, conn.user_id, conn)
        for chat_id in conn.chats:
            _discard(self.by_chat, chat_id, conn)
        await self._update_presence(conn.user_id)

    async def touch(self, conn: Connection) -> None:
        """An application frame arrived: the connection counts as present again."""
        conn.last_active = time.monotonic()
        if conn.user_id not in self.online:
            await self._update_presence(conn.user_id)

    def is_online(self, user_id: int) -> bool:
        deadline = time.monotonic() - self.presence_timeout
        return any(c.last_active > deadline for c in self.by_user.get(user_id, ()))

    async def sweep_presence(self) -> None:
        """Marks offline the users whose connections all went quiet."""
        for user_id in tuple(self.online):
            await self._update_presence(user_id)

    async def _update_presence(self, user_id: int) -> None:
        online = self.is_online(user_id)
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

    async def handle(self, event: Event) -> None:
        handler = _HANDLERS.get(event.get("t", ""))
        if handler is not None:
            handler(self, event)

    def _on_chat(self, event: Event) -> None:
        frame, sender, skip = event["frame"], event.get("sender_id"), event.get("skip_user")
        for conn in tuple(self.by_chat.get(event["chat_id"], ())):
            if conn.user_id == skip or (sender is not None and sender in conn.blocked):
                continue
            conn.push(frame)

    def _on_users(self, event: Event) -> None:
        for user_id in event["user_ids"]:
            for conn in tuple(self.connections_of(user_id)):
                conn.push(event["frame"])

    def _on_membership(self, event: Event) -> None:
        chat_id, joined = event["chat_id"], event["joined"]
        for user_id in event["user_ids"]:
            for conn in self.connections_of(user_id):
                if joined:
                    conn.chats.add(chat_id)
                    self.by_chat[chat_id].add(conn)
                else:
                    conn.chats.discard(chat_id)
                    _discard(self.by_chat, chat_id, conn)

    def _on_chat_removed(self, event: Event) -> None:
        for conn in self.by_chat.pop(event["chat_id"], set()):
            conn.chats.discard(event["chat_id"])

    def _on_blocks(self, event: Event) -> None:
        for conn in self.connections_of(event["user_id"]):
            conn.blocked = set(event["blocked"])

    def _on_sessions_ended(self, event: Event) -> None:
        code = CLOSE_BANNED if event.get("banned") else CLOSE_SESSION_ENDED
        session_ids, keep = event.get("session_ids"), event.get("keep")
        for conn in tuple(self.connections_of(event["user_id"])):
            if conn.session_id == keep:
                continue
            if session_ids is None or conn.session_id in session_ids:
                conn.close(code, "banned" if code == CLOSE_BANNED else "session ended")

    def close_sessions(self, session_ids: set[int], code: int) -> None:
        for conns in tuple(self.by_user.values()):
            for conn in tuple(conns):
                if conn.session_id in session_ids:
                    conn.close(code)

    def close_all(self, code: int) -> None:
        for conns in tuple(self.by_user.values()):
            for conn in tuple(conns):
                conn.close(code, "server shutting down")


_HANDLERS: dict[str, Callable[[Hub, Event], None]] = {
    "chat": Hub._on_chat,
    "users": Hub._on_users,
    "membership": Hub._on_membership,
    "chat_removed": Hub._on_chat_removed,
    "blocks": Hub._on_blocks,
    "sessions_ended": Hub._on_sessions_ended,
}


def _discard(index: dict[int, set[Connection]], key: int, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]


async def drain(conn: Connection, send_text: Callable[[str], Awaitable[Any]]) -> Close:
    """The writer loop of one connection: sends queued frames until a Close comes."""
    while True:
        item = await conn.queue.get()
        if isinstance(item, Close):
            return item
        await send_text(item)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
