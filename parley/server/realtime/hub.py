"""The hub: this process's open WebSocket connections, and the fan-out of broker events.

A frame for a chat is framed once per event (`text_frame`: server-to-client frames are
unmasked, so every recipient gets the same bytes) and written straight to each
connection's transport from the dispatch, while that client keeps up: no queue, no task
switch, no per-recipient encoding (how a connection writes, queues and drains is in
connection.py).
The hub dispatches on the typed events of `realtime/events.py` and imports no domain
service.

What a socket hears is kept exact by the events that change it (membership, blocks,
sessions, bans); `generation` counts them, so a socket whose view was read before one
of them passed reads it again before it joins (ws.py). A `Resync` (events may have been
lost) holds back every event while the view of every socket is read again, then applies
the views and replays what it held, in order (`_recheck`); a process that cannot read
them closes its sockets with 1012, and its clients reconnect and sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from parley.server.realtime import events
from parley.server.realtime.connection import (
    CLOSE_BANNED,
    CLOSE_SERVICE_RESTART,
    CLOSE_SESSION_ENDED,
    Connection,
    Outbox,
    cancel,
)
from parley.server.realtime.events import (
    BlocksChanged,
    ChatFrame,
    ChatRemoved,
    MembershipChanged,
    PresenceChanged,
    Resync,
    SessionsEnded,
    UsersFrame,
)
from parley.server.realtime.slots import SocketSlots
from parley.server.realtime.views import NOTHING, SocketView
from parley.wsserver import text_frame

log = logging.getLogger("parley.hub")
MAX_HELD = 20_000  # events a Resync's recheck may hold back; past it, sockets close (1012)


PresenceHook = Callable[[int, bool], Awaitable[None]]
ViewReader = Callable[[Collection[int]], Awaitable[dict[int, SocketView]]]


async def _no_presence(_user_id: int, _online: bool) -> None:
    return None


async def _no_views(_user_ids: Collection[int]) -> dict[int, SocketView]:
    raise RuntimeError("this hub cannot read views: its sockets close on a Resync")


class Hub:
    """Indexes local connections by user and by chat, and fans events out to them.

    It also tracks presence: a user is online while one of its connections (here, or in
    another process: `remote`, fed by PresenceChanged events) sent an application frame
    within `presence_timeout` seconds. `on_presence` hears when this process's view of a
    user flips. `read_views` reads what sockets may hear from the database (after a
    `Resync`).
    """

    def __init__(
        self,
        *,
        presence_timeout: float = 75.0,
        on_presence: PresenceHook = _no_presence,
        monotonic: Callable[[], float] = time.monotonic,
        process: str = "local",
        read_views: ViewReader = _no_views,
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
        self.outbox = Outbox()  # for the connections that write directly
        self.read_views = read_views
        self.generation = 0  # events that changed what some socket may hear (see ws.py)
        self.rechecks = 0  # Resyncs whose views were applied
        self._held: list[events.Event] | None = None  # events held back during a recheck
        self._rechecking: asyncio.Task[None] | None = None
        self._again = False  # a Resync came during a recheck: its views must be read again

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
        held = self._held
        if held is not None and type(typed) is not Resync:
            if len(held) < MAX_HELD:
                held.append(typed)
            else:
                self._give_up("too many events during a recheck")
            return
        self._dispatch(typed)

    def _dispatch(self, event: events.Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_chat(self, event: Any) -> None:
        conns = self.by_chat.get(event.chat_id)
        if not conns:
            return
        frame, sender, skip = event.frame, event.sender_id, event.skip_user
        data = text_frame(frame)  # framed once: the same bytes go to every recipient
        if sender is None:
            for conn in tuple(conns):
                if conn.user_id != skip:
                    conn.push(frame, data)
            return
        for conn in tuple(conns):
            if conn.user_id != skip and sender not in conn.blocked:
                conn.push(frame, data)

    def _on_users(self, event: Any) -> None:
        frame = event.frame
        data = text_frame(frame)
        for user_id in event.user_ids:
            for conn in tuple(self.connections_of(user_id)):
                conn.push(frame, data)

    def _on_membership(self, event: Any) -> None:
        self.generation += 1
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
        self.generation += 1
        for conn in self.by_chat.pop(event.chat_id, set()):
            conn.chats.discard(event.chat_id)

    def _on_blocks(self, event: Any) -> None:
        self.generation += 1
        for conn in self.connections_of(event.user_id):
            conn.blocked = set(event.blocked)

    def _on_sessions_ended(self, event: Any) -> None:
        self.generation += 1
        code = CLOSE_BANNED if event.banned else CLOSE_SESSION_ENDED
        session_ids, keep = event.session_ids, event.keep
        for conn in tuple(self.connections_of(event.user_id)):
            if conn.session_id == keep:
                continue
            if session_ids is None or conn.session_id in session_ids:
                conn.close(code, "banned" if code == CLOSE_BANNED else "session ended")

    def _on_resync(self, _event: Any) -> None:
        """Events may have been lost: every socket's view is read again (`_recheck`); what
        comes meanwhile is held back, and what was held before this Resync is dropped (it
        cannot be replayed over views read after a newer loss)."""
        self.generation += 1
        self._held = []
        if self._rechecking is None or self._rechecking.done():
            self._rechecking = asyncio.create_task(self._recheck(), name="hub-recheck")
        else:
            self._again = True

    async def _recheck(self) -> None:
        views: dict[int, SocketView] | None = None
        while views is None or self._again:
            self._again = False
            try:
                views = await self.read_views(set(self.by_user))
            except Exception:
                log.warning("could not re-read the sockets' views after a Resync", exc_info=True)
                self._give_up("server restarting")
                return
        if self._held is None:  # given up meanwhile (too much held): its sockets closed
            return
        for user_id, conns in tuple(self.by_user.items()):
            view = views.get(user_id)
            if view is not None:  # else it joined after the read, with a view read later
                for conn in tuple(conns):
                    self.apply_view(conn, view)
        held, self._held = self._held or [], None
        for event in held:
            self._dispatch(event)
        self.rechecks += 1
        log.info("re-checked %d users' sockets after a resync", len(views))

    def _give_up(self, reason: str) -> None:
        """Without fresh views no socket may go on hearing: all close with 1012, and their
        clients reconnect (reading their views again) and sync."""
        self._held = None
        self._again = False
        self.close_all(CLOSE_SERVICE_RESTART, reason)

    def apply_view(self, conn: Connection, view: SocketView = NOTHING) -> None:
        """Makes what the socket hears what the database says (`view`), indexed or not; a
        socket whose session ended or whose user is banned closes (4001, 4003)."""
        if view.banned:
            conn.close(CLOSE_BANNED, "banned")
        elif conn.session_id not in view.sessions:
            conn.close(CLOSE_SESSION_ENDED, "session ended")
        indexed = conn in self.by_user.get(conn.user_id, ())
        for chat_id in conn.chats - view.chats:
            conn.chats.discard(chat_id)
            if indexed:
                _discard(self.by_chat, chat_id, conn)
        for chat_id in view.chats - conn.chats:
            conn.chats.add(chat_id)
            if indexed:
                self.by_chat[chat_id].add(conn)
        conn.blocked = view.blocked or frozenset()

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

    def close_all(self, code: int, reason: str = "server shutting down") -> None:
        for conns in tuple(self.by_user.values()):
            for conn in tuple(conns):
                conn.close(code, reason)

    async def close(self) -> None:
        await cancel(self._rechecking)


_HANDLERS: dict[type[Any], Callable[[Hub, Any], None]] = {
    ChatFrame: Hub._on_chat,
    UsersFrame: Hub._on_users,
    MembershipChanged: Hub._on_membership,
    ChatRemoved: Hub._on_chat_removed,
    BlocksChanged: Hub._on_blocks,
    SessionsEnded: Hub._on_sessions_ended,
    PresenceChanged: Hub._on_presence,
    Resync: Hub._on_resync,
}


def _discard(index: dict[int, set[Connection]], key: int, conn: Connection) -> None:
    conns = index.get(key)
    if conns is not None:
        conns.discard(conn)
        if not conns:
            del index[key]
