"""The WebSocket endpoint: handshake auth, joining the hub, the socket's writer and the read
loop. What each frame type does is in handlers.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import aliased
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley import errors
from parley.clock import Clock
from parley.private_api import abort_transport
from parley.server.accounts.schemas import SenderPublic
from parley.server.accounts.service import user_public
from parley.server.cache import blocks_by
from parley.server.db.models import Chat, Membership
from parley.server.deps import AppState, Principal, authenticate, get_state
from parley.server.realtime import frames
from parley.server.realtime.connection import CLOSE_TRY_AGAIN, Close, Connection, cancel, drain
from parley.server.realtime.handlers import Context, handle
from parley.server.realtime.views import read_views
from parley.wsserver import FRAMES_EXTENSION, text_frame

log = logging.getLogger("parley.ws")
HEARTBEAT_INTERVAL = 30
CLOSE_TOO_BIG = 1009
CLOSE_GRACE = 2.0  # seconds a closing socket's writer may take to send what it has
MAX_REREADS = 5  # views a joining socket reads while events keep changing them; then 1013


class SocketConnection(Connection):
    """A hub connection on a Starlette WebSocket. Its frames are written directly while
    the client keeps up; the writer task (and the queue) exist only once a frame had to
    wait: a client that fell behind, a socket without direct writes, or a close."""

    __slots__ = ("clock", "frames", "writer", "ws")

    def __init__(
        self,
        ws: WebSocket,
        frames: dict[str, Any] | None,
        principal: Principal,
        queue_size: int,
        chats: set[int],
        blocked: AbstractSet[int],
        clock: Clock,
    ) -> None:
        super().__init__(principal.id, principal.session_id, queue_size, chats, blocked)
        self.ws, self.frames, self.clock = ws, frames, clock
        self.writer: asyncio.Task[None] | None = None

    def _queued(self) -> None:
        if self.writer is None:
            self.writer = asyncio.create_task(_write(self), name=f"ws-writer-{self.user_id}")

    def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        super().close(code, reason)  # queues the Close: the writer runs from now on
        # A writer stuck sending to a client that does not read never reaches the Close:
        # after a grace period it is cancelled and the socket closed from here (the close
        # handshake itself is bounded by the WebSocket library's close timeout).
        close = Close(code, reason)
        self.clock.call_later(CLOSE_GRACE, _force_close, self, close)


async def websocket_endpoint(ws: WebSocket) -> None:
    state = get_state(ws)
    slots = state.hub.slots
    try:
        slots.admit(state.settings.max_handshakes)  # refused at once past the bound
    except errors.ParleyError as exc:
        await _deny(ws, exc)
        return
    try:
        generation = state.hub.generation  # before the handshake reads what the socket hears
        principal, chats, blocked = await _handshake(ws, state)
        slots.take(
            principal.id,
            per_user=state.settings.max_sockets_per_user,
            total=state.settings.max_connections,
        )
    except errors.ParleyError as exc:
        await _deny(ws, exc)
        return
    finally:
        slots.admitted()  # what the handshake reads is read: the next one may start
    user_id = principal.id
    try:
        conn = await _open(ws, state, principal, chats, blocked)
        del principal  # its User row is not kept for as long as the socket is open
        await _serve(ws, state, conn, generation)
    finally:
        slots.release(user_id)


async def _open(
    ws: WebSocket,
    state: AppState,
    principal: Principal,
    chats: set[int],
    blocked: AbstractSet[int],
) -> SocketConnection:
    """Accepts the socket and sends `hello`: first (written now, or queued first), so no
    event can reach the client before it."""
    await ws.accept()
    framing = ws.scope.get("extensions", {}).get(FRAMES_EXTENSION)
    conn = SocketConnection(
        ws, framing, principal, state.settings.ws_send_queue, chats, blocked, state.clock
    )
    if framing is not None:  # uvicorn under parley/wsserver.py: frames written as bytes
        conn.write_now, conn.outbox = framing["write_now"], state.hub.outbox
    conn.push(
        frames.Hello(
            user=user_public(principal.user, own=True, online=True),
            heartbeat_interval=HEARTBEAT_INTERVAL,
        ).encode()
    )
    return conn


async def _serve(ws: WebSocket, state: AppState, conn: SocketConnection, generation: int) -> None:
    ctx = Context(state, conn.user_id, conn)
    try:
        await _join(state, conn, generation)
        await _read_loop(ws, ctx)
    finally:
        ctx.gone = True
        try:
            await state.hub.unregister(conn)  # drops the slot first, then presence
        except Exception:
            log.warning("presence failed while a socket unregistered", exc_info=True)
        finally:
            await cancel(conn.writer)


async def _join(state: AppState, conn: SocketConnection, generation: int) -> None:
    """Indexes the socket in the hub with what it may hear. When events that change it
    (a removal, a block, a ban...) passed since `generation`, taken before the handshake
    read it, the socket missed them: its view is read again, until none passes during a
    read (then 1013: try again). Nothing awaits between the last comparison and the
    indexing, so every later event reaches the indexed socket."""
    hub = state.hub
    for _ in range(MAX_REREADS):
        if hub.generation == generation:
            try:
                # Present from now on (online); `register` indexes before its first await,
                # so a presence failure is harmless.
                await hub.register(conn)
            except Exception:
                log.warning("presence failed while a socket registered", exc_info=True)
            return
        generation = hub.generation
        try:
            async with state.reads() as session:
                views = await read_views(session, [conn.user_id], now=state.clock())
        except Exception:
            log.warning("could not re-read a joining socket's view", exc_info=True)
            break
        hub.apply_view(conn, views[conn.user_id])
        if conn.closing:
            return
    conn.close(CLOSE_TRY_AGAIN, "try again")


async def _handshake(
    ws: WebSocket, state: AppState
) -> tuple[Principal, set[int], AbstractSet[int]]:
    """Authenticates, and reads the user's chats and blocks: what the socket subscribes to
    and filters with. The send checks keep what it read, so a first send asks nothing,
    and the user's next socket reads only its principal (while no event changed them)."""
    generation = state.checks.generation
    async with state.reads() as session:
        principal = await authenticate(ws, session, unsafe=True, allow_query=True)
        known = state.checks.socket_view(principal.id)
        if known is not None:
            chats, mine = known
            return principal, set(chats), _live_blocks(mine, state)
        rows = (await session.execute(_MY_CHATS, {"user_id": principal.id})).all()
        peers: dict[int, tuple[int, ...]] = {}
        for chat_id, chat_type, _role, peer in rows:
            if chat_type == "direct":
                peers[chat_id] = (principal.id,) if peer is None else (principal.id, peer)
        # the direct peers' blocks too: a first send checks both directions
        blockers = {principal.id} | {
            p for members in list(peers.values())[:MAX_PEER_BLOCKS] for p in members
        }
        blocks = await blocks_by(session, blockers)
    user = principal.user
    state.checks.prime(
        generation,
        user_id=principal.id,
        memberships=[(chat_id, chat_type, role) for chat_id, chat_type, role, _ in rows],
        peers=peers,
        blocks=blocks,
        ban=principal.ban,
        sender=SenderPublic(id=user.id, username=user.username, display_name=user.display_name),
    )
    return principal, {row[0] for row in rows}, _live_blocks(blocks[principal.id], state)


def _live_blocks(blocks: dict[int, datetime | None], state: AppState) -> AbstractSet[int]:
    if not blocks:
        return _NO_BLOCKS
    now = state.clock()
    return frozenset(b for b, until in blocks.items() if until is None or until > now)


_NO_BLOCKS: frozenset[int] = frozenset()
MAX_PEER_BLOCKS = 1000  # direct peers whose blocks a handshake reads (beyond: on a miss)


# The user's chats with its role, and for a direct chat the other member (None when alone).
_peer = aliased(Membership)
_MY_CHATS = (
    select(Membership.chat_id, Chat.type, Membership.role, _peer.user_id)
    .join(Chat, Chat.id == Membership.chat_id)
    .outerjoin(
        _peer,
        and_(
            Chat.type == "direct",
            _peer.chat_id == Membership.chat_id,
            _peer.user_id != Membership.user_id,
        ),
    )
    .where(Membership.user_id == bindparam("user_id"))
)


async def _deny(ws: WebSocket, exc: errors.ParleyError) -> None:
    """Refuses before the upgrade with a plain HTTP answer (401, 403, 429, 503), with
    `Retry-After` when the refusal says when to come back (429, 503 `overloaded`)."""
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = JSONResponse(
        {"detail": exc.detail, "code": exc.code}, status_code=exc.status, headers=headers
    )
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(body)
    else:
        await ws.close(code=4001 if exc.status == 401 else 1008)


async def _write(conn: SocketConnection) -> None:
    """The writer task of a connection whose frames had to wait: sends the queue."""
    ws, framing = conn.ws, conn.frames
    send_text: Callable[[str], Awaitable[Any]] = ws.send_text
    send_many: Callable[[list[str]], Awaitable[Any]] | None = None
    if framing is not None:  # framed here, and a batch written at once
        write_frames: Callable[[bytes], Awaitable[None]] = framing["write"]

        async def send_text(text: str) -> None:
            await write_frames(text_frame(text))

        async def send_many(batch: list[str]) -> None:
            await write_frames(b"".join([text_frame(text) for text in batch]))

    try:
        close = await drain(conn, send_text, send_many)
        await ws.close(close.code, close.reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        conn.abort()  # nothing more goes out; senders waiting for room wake up
    except asyncio.CancelledError:
        conn.abort()
        raise


def _force_close(conn: SocketConnection, close: Close) -> None:
    writer = conn.writer
    if writer is None or writer.done():
        return
    writer.cancel()
    ws = conn.ws

    async def close_now() -> None:
        try:
            async with conn.clock.timeout(CLOSE_GRACE):
                await ws.close(close.code, close.reason)
        except Exception:  # its buffers are full: the close frame cannot go out either
            abort_transport(ws)

    task = asyncio.create_task(close_now())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()


async def _read_loop(ws: WebSocket, ctx: Context) -> None:
    limit = ctx.state.settings.ws_max_frame
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect" or ctx.conn.closing:
            return  # what a closed socket still had queued is dropped unprocessed
        text = message.get("text")
        if text is None:
            text = _decode(message.get("bytes") or b"", ctx)
            if text is None:
                continue
        if len(text) > limit or len(text.encode()) > limit:
            ctx.conn.close(CLOSE_TOO_BIG, "frame too large")
            return
        await ctx.state.hub.touch(ctx.conn)
        await handle(ctx, text)


def _decode(data: bytes, ctx: Context) -> str | None:
    try:
        return data.decode()
    except UnicodeDecodeError:
        ctx.conn.push(frames.Error("bad_frame", "Binary frame is not UTF-8").encode())
        return None
