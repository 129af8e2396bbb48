"""The WebSocket endpoint: handshake auth, the read loop, and one handler per frame type.

Handlers only translate: each calls the same domain function as the REST route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import aliased
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley import errors
from parley.clock import Clock
from parley.private_api import abort_transport
from parley.server import problems
from parley.server.accounts.schemas import SenderPublic
from parley.server.accounts.service import user_public
from parley.server.cache import blocks_by
from parley.server.chats.general import general_id
from parley.server.db.models import Chat, Membership
from parley.server.deps import AppState, Principal, authenticate, get_state
from parley.server.messages import service as messages
from parley.server.messages.writer import Result
from parley.server.realtime import frames, protocol
from parley.server.realtime.events import ChatFrame
from parley.server.realtime.hub import CLOSE_TRY_AGAIN, Close, Connection, cancel, drain
from parley.server.realtime.views import read_views
from parley.wsserver import FRAMES_EXTENSION, text_frame

log = logging.getLogger("parley.ws")
HEARTBEAT_INTERVAL = 30
CLOSE_TOO_BIG = 1009
CLOSE_GRACE = 2.0  # seconds a closing socket's writer may take to send what it has
MAX_UNACKED = 64  # sends of one socket waiting for their commit; past it, reading waits
MAX_REREADS = 5  # views a joining socket reads while events keep changing them; then 1013


@dataclass(slots=True)
class Context:
    state: AppState
    user_id: int
    conn: Connection
    unacked: set[asyncio.Future[Result]] = field(default_factory=set)
    gone: bool = False  # the client disconnected: what it queued is dropped unprocessed

    def alive(self) -> bool:
        return not self.gone and not self.conn.closing


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
        await _handle(ctx, text)


def _decode(data: bytes, ctx: Context) -> str | None:
    try:
        return data.decode()
    except UnicodeDecodeError:
        ctx.conn.push(frames.Error("bad_frame", "Binary frame is not UTF-8").encode())
        return None


async def _handle(ctx: Context, text: str) -> None:
    raw: Any = None
    try:
        raw = protocol.decode(text)  # known before validation, so errors can echo its ref
        parsed = protocol.parse(raw)
        await _check_rate(ctx, parsed)
        await HANDLERS[parsed.kind](ctx, parsed, raw)
    except Exception as exc:
        ctx.conn.push(_error_frame(ctx.state, exc, protocol.ref_of(raw)))


def _error_frame(state: AppState, exc: BaseException, ref: Any) -> str:
    """The error frame for what a handler (or the writer, later) raised: classified and
    counted as REST would (problems.py)."""
    problem = problems.report(exc, state.metrics)
    return frames.Error(problem.code, problem.detail, ref).encode()


async def _check_rate(ctx: Context, f: protocol.Frame) -> None:
    """Every frame type has a per-user budget (send and typing count in their handlers)."""
    if f.budget.rate is not None:
        await ctx.state.throttle.hit(
            f"frame:{f.budget.name}", ctx.user_id, detail=f"Too many {f.kind} frames"
        )


Handler = Callable[[Context, Any, Any], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def handles(*models: type[protocol.Frame]) -> Callable[[Handler], Handler]:
    """Registers the handler of some frame types (checked complete at import, below)."""

    def register(handler: Handler) -> Handler:
        for model in models:
            HANDLERS[model.kind] = handler
        return handler

    return register


@handles(protocol.Send)
async def _on_send(ctx: Context, f: protocol.Send, raw: Any) -> None:
    """Checks and queues the send, then goes on reading: the commit answers later (the
    `message` frame, or an error frame), so one socket's sends can share a batch."""
    chat_id = f.chat_id
    if chat_id is None:
        if "type" in raw:
            raise errors.ValidationFailed("chat_id: Field required")
        async with ctx.state.reads() as session:
            chat_id = await general_id(session)
    if len(ctx.unacked) >= MAX_UNACKED:
        await asyncio.wait(ctx.unacked, return_when=asyncio.FIRST_COMPLETED)
    state = ctx.state
    future = await messages.submit_send(
        state.writer,
        state.checks,
        state.throttle,
        user_id=ctx.user_id,
        chat_id=chat_id,
        content=f.content,
        client_id=f.client_id,
        reply_to=f.reply_to,
        attachment_ids=f.attachment_ids,
        alive=ctx.alive,
    )
    ctx.unacked.add(future)
    ref = protocol.ref_of(raw)
    started = state.clock.monotonic()

    def done(fut: asyncio.Future[Result]) -> None:
        ctx.unacked.discard(fut)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            ctx.conn.push(_error_frame(state, exc, ref))
            return
        message, created = fut.result()
        if state.metrics is not None:
            state.metrics.record_send(state.clock.monotonic() - started, created=created)
        if not created:  # a resend: acknowledge again with the stored message
            ctx.conn.push(frames.NewMessage(message).encode())

    future.add_done_callback(done)


@handles(protocol.Edit)
async def _on_edit(ctx: Context, f: protocol.Edit, _raw: Any) -> None:
    async with ctx.state.sessions() as session:
        await messages.edit_message(
            session,
            ctx.state.broker,
            user_id=ctx.user_id,
            message_id=f.message_id,
            content=f.content,
            now=ctx.state.clock(),
        )


@handles(protocol.Delete)
async def _on_delete(ctx: Context, f: protocol.Delete, _raw: Any) -> None:
    async with ctx.state.sessions() as session:
        await messages.delete_message(
            session,
            ctx.state.broker,
            user_id=ctx.user_id,
            message_id=f.message_id,
            now=ctx.state.clock(),
        )


@handles(protocol.React, protocol.Unreact)
async def _on_react(ctx: Context, f: protocol.React, _raw: Any) -> None:
    async with ctx.state.sessions() as session:
        await messages.react(
            session,
            ctx.state.broker,
            user_id=ctx.user_id,
            message_id=f.message_id,
            emoji=f.emoji,
            add=f.kind == "react",
            now=ctx.state.clock(),
            max_reactions=ctx.state.settings.max_reactions,
        )


@handles(protocol.Typing)
async def _on_typing(ctx: Context, f: protocol.Typing, _raw: Any) -> None:
    if f.chat_id not in ctx.conn.chats:
        raise errors.NotMember()
    if not await ctx.state.throttle.allow("typing", ctx.user_id):
        return  # typing is advisory: extra frames are dropped, not refused
    await ctx.state.broker.publish(
        ChatFrame.of(
            f.chat_id,
            frames.Typing(chat_id=f.chat_id, user_id=ctx.user_id),
            sender_id=ctx.user_id,
            skip_user=ctx.user_id,
        )
    )


@handles(protocol.Read)
async def _on_read(ctx: Context, f: protocol.Read, _raw: Any) -> None:
    async with ctx.state.sessions() as session:
        await messages.mark_read(
            session, ctx.state.broker, user_id=ctx.user_id, chat_id=f.chat_id, seq=f.seq
        )


@handles(protocol.Sync)
async def _on_sync(ctx: Context, f: protocol.Sync, _raw: Any) -> None:
    """Every missed message as `message` frames, then `synced` (listing cut chats).

    `SYNC_CHATS_PER_READ` chats at a time: their rows are loaded on one pooled
    connection, the session is released, then they are sent, so a client that stops
    reading never holds the database (its send waits are bounded), and a reconnect storm
    takes one connection per sync rather than one per chat.
    """
    truncated: list[int] = []
    chats = list(f.chats.items())
    for start in range(0, len(chats), SYNC_CHATS_PER_READ):
        if not ctx.alive():
            return
        loaded: list[tuple[int, list[Any], bool]] = []
        async with ctx.state.reads() as session:
            for chat_id, last_seen in chats[start : start + SYNC_CHATS_PER_READ]:
                try:
                    missed, cut = await messages.missed_messages(
                        session,
                        user_id=ctx.user_id,
                        chat_id=chat_id,
                        after=last_seen,
                        now=ctx.state.clock(),
                    )
                except errors.ParleyError:
                    continue  # a chat the user left or never had: nothing to sync
                loaded.append((chat_id, missed, cut))
        for chat_id, missed, cut in loaded:
            for message in missed:
                await ctx.conn.send(frames.NewMessage(message).encode())
            if cut:
                truncated.append(chat_id)
    await ctx.conn.send(frames.Synced(truncated).encode())


SYNC_CHATS_PER_READ = 10  # chats one sync reads per pooled connection (then sends them)


@handles(protocol.PresenceQuery)
async def _on_presence_query(ctx: Context, f: protocol.PresenceQuery, _raw: Any) -> None:
    """One `presence` frame per asked user that shares a chat with the caller."""
    for answer in await ctx.state.presence.query(ctx.user_id, f.user_ids):
        await ctx.conn.send(answer)


@handles(protocol.Ping)
async def _on_ping(ctx: Context, _f: protocol.Ping, _raw: Any) -> None:
    await ctx.conn.send(frames.Pong().encode())


protocol.check_handled(HANDLERS)
