"""The hub: this process's open WebSocket connections, and the fan-out of broker events.

A frame for a chat is framed once per event (`text_frame`: server-to-client frames are
unmasked, so every recipient gets the same bytes) and written straight to each
connection's transport from the dispatch, while that client keeps up: no queue, no task
switch, no per-recipient encoding. A connection whose transport is paused (a client
that reads slower than it is sent to), or whose writer still has frames, gets the frame
in its bounded send queue instead, drained by its own writer task, which sends
everything queued at each wakeup in one write; a connection whose queue is full cannot
keep up and is closed with 1013 rather than buffered. Frames never overtake each other:
the direct write is taken only when the queue is empty and the writer holds nothing.
Within one turn of the event loop a socket's frames after the first (a writer batch of
messages to one chat) are held and written together when the turn ends (`Outbox`).
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
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from parley.server.realtime import events
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
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013
CLOSE_SESSION_ENDED = 4001
CLOSE_BANNED = 4003
SEND_WAIT = 5.0  # how long a reply may wait for room in a full queue before 1013
HOLD_LIMIT = 64 * 1024  # bytes one loop turn may hold back for a socket; past it, queue
MAX_HELD = 20_000  # events a Resync's recheck may hold back; past it, sockets close (1012)


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str = ""


_NO_BLOCKS: frozenset[int] = frozenset()


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
        conn.blocked = view.blocked or _NO_BLOCKS

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
