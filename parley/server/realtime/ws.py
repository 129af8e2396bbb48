"""The WebSocket endpoint: handshake auth, the read loop, and one handler per frame type.

Handlers only translate: each calls the same domain function as the REST route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley import errors
from parley.server.accounts.service import user_public
from parley.server.chats.service import general_id
from parley.server.db.models import Membership
from parley.server.deps import AppState, Principal, authenticate, get_state
from parley.server.messages import service as messages
from parley.server.messages.service import frame
from parley.server.moderation.service import blocked_ids
from parley.server.realtime import protocol
from parley.server.realtime.hub import Connection, cancel, drain

log = logging.getLogger("parley.ws")
HEARTBEAT_INTERVAL = 30
CLOSE_TOO_BIG = 1009


@dataclass
class Context:
    state: AppState
    principal: Principal
    conn: Connection

    @property
    def user_id(self) -> int:
        return self.principal.id


async def websocket_endpoint(ws: WebSocket) -> None:
    state = get_state(ws)
    try:
        principal, chats, blocked = await _handshake(ws, state)
        state.hub.slots.take(
            principal.id,
            per_user=state.settings.max_sockets_per_user,
            total=state.settings.max_connections,
        )
    except errors.ParleyError as exc:
        await _deny(ws, exc)
        return
    try:
        await _serve(ws, state, principal, chats, blocked)
    finally:
        state.hub.slots.release(principal.id)


async def _serve(
    ws: WebSocket, state: AppState, principal: Principal, chats: set[int], blocked: set[int]
) -> None:
    await ws.accept()
    conn = Connection(principal.id, principal.session_id, state.settings.ws_send_queue)
    conn.chats, conn.blocked = chats, blocked
    # `hello` is queued before registering: registering awaits the presence announcement,
    # and events for the user's chats could otherwise be queued ahead of it. The user is
    # online from here on (this connection is active).
    conn.push(
        frame(
            "hello",
            user=user_public(principal.user, own=True, online=True),
            heartbeat_interval=HEARTBEAT_INTERVAL,
        )
    )
    await state.hub.register(conn)
    writer = _start_writer(ws, conn)
    try:
        await _read_loop(ws, Context(state, principal, conn))
    finally:
        await state.hub.unregister(conn)
        await cancel(writer)


async def _handshake(ws: WebSocket, state: AppState) -> tuple[Principal, set[int], set[int]]:
    async with state.reads() as session:
        principal = await authenticate(ws, session, unsafe=True, allow_query=True)
        rows = await session.execute(
            select(Membership.chat_id).where(Membership.user_id == principal.id)
        )
        return principal, set(rows.scalars()), set(await blocked_ids(session, principal.id))


async def _deny(ws: WebSocket, exc: errors.ParleyError) -> None:
    """Refuses before the upgrade with a plain HTTP answer (401, 403, 429, 503)."""
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.RateLimited) else None
    body = JSONResponse(
        {"detail": exc.detail, "code": exc.code}, status_code=exc.status, headers=headers
    )
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(body)
    else:
        await ws.close(code=4001 if exc.status == 401 else 1008)


def _start_writer(ws: WebSocket, conn: Connection) -> asyncio.Task[None]:
    async def write() -> None:
        try:
            close = await drain(conn, ws.send_text)
            await ws.close(close.code, close.reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            conn.closing = True

    return asyncio.create_task(write(), name=f"ws-writer-{conn.user_id}")


async def _read_loop(ws: WebSocket, ctx: Context) -> None:
    limit = ctx.state.settings.ws_max_frame
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
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
        ctx.conn.push(
            frame("error", code="bad_frame", detail="Binary frame is not UTF-8", ref=None)
        )
        return None


async def _handle(ctx: Context, text: str) -> None:
    raw: Any = None
    try:
        raw = protocol.decode(text)  # known before validation, so errors can echo its ref
        parsed = protocol.parse(raw)
        await _check_rate(ctx, parsed.type)
        await HANDLERS[parsed.type](ctx, parsed, raw)
    except errors.ParleyError as exc:
        ctx.conn.push(frame("error", code=exc.code, detail=exc.detail, ref=protocol.ref_of(raw)))
    except (OperationalError, DBAPIError, OSError, TimeoutError):
        log.warning("database unavailable while handling a frame", exc_info=True)
        ctx.conn.push(
            frame(
                "error",
                code="unavailable",
                detail="Service temporarily unavailable",
                ref=protocol.ref_of(raw),
            )
        )
    except Exception:
        log.exception("frame handler failed")
        ctx.conn.push(
            frame(
                "error",
                code="internal_error",
                detail="Something went wrong",
                ref=protocol.ref_of(raw),
            )
        )


async def _check_rate(ctx: Context, kind: str) -> None:
    """Every frame type has a per-user budget (send and typing count in their handlers)."""
    limit = f"frame:{protocol.RATE_GROUP.get(kind, kind)}"
    if limit in ctx.state.throttle:
        await ctx.state.throttle.hit(limit, ctx.user_id, detail=f"Too many {kind} frames")


async def _on_send(ctx: Context, f: protocol.Frame, raw: Any) -> None:
    assert isinstance(f, protocol.Send)
    async with ctx.state.sessions() as session:
        chat_id = f.chat_id
        if chat_id is None:
            if "type" in raw:
                raise errors.ValidationFailed("chat_id: Field required")
            chat_id = await general_id(session)
        message, created = await messages.do_send(
            ctx.state,
            session,
            user_id=ctx.user_id,
            chat_id=chat_id,
            content=f.content,
            client_id=f.client_id,
            reply_to=f.reply_to,
            attachment_ids=f.attachment_ids,
        )
    if not created:  # a resend: acknowledge again with the stored message, nothing duplicated
        await ctx.conn.send(frame("message", message=message))


async def _on_edit(ctx: Context, f: protocol.Frame, _raw: Any) -> None:
    assert isinstance(f, protocol.Edit)
    async with ctx.state.sessions() as session:
        await messages.edit_message(
            session,
            ctx.state.broker,
            user_id=ctx.user_id,
            message_id=f.message_id,
            content=f.content,
        )


async def _on_delete(ctx: Context, f: protocol.Frame, _raw: Any) -> None:
    assert isinstance(f, protocol.Delete)
    async with ctx.state.sessions() as session:
        await messages.delete_message(
            session, ctx.state.broker, user_id=ctx.user_id, message_id=f.message_id
        )


async def _on_react(ctx: Context, f: protocol.Frame, _raw: Any) -> None:
    assert isinstance(f, protocol.React)
    async with ctx.state.sessions() as session:
        await messages.react(
            session,
            ctx.state.broker,
            user_id=ctx.user_id,
            message_id=f.message_id,
            emoji=f.emoji,
            add=f.type == "react",
        )


async def _on_typing(ctx: Context, f: protocol.Frame, _raw: Any) -> None:
    assert isinstance(f, protocol.Typing)
    if f.chat_id not in ctx.conn.chats:
        raise errors.NotMember()
    if not await ctx.state.throttle.allow("typing", ctx.user_id):
        return  # typing is advisory: extra frames are dropped, not refused
    await ctx.state.broker.publish(
        {
            "t": "chat",
            "chat_id": f.chat_id,
            "sender_id": ctx.user_id,
            "skip_user": ctx.user_id,
            "frame": frame("typing", chat_id=f.chat_id, user_id=ctx.user_id),
        }
    )


async def _on_read(ctx: Context, f: protocol.Frame, _raw: Any) -> None:
    assert isinstance(f, protocol.Read)
    async with ctx.state.sessions() as session:
        await messages.mark_read(
            session, ctx.state.broker, user_id=ctx.user_id, chat_id=f.chat_id, seq=f.seq
        )


async def _on_sync(ctx: Context, f: protocol.Frame, _raw: Any) -> None:
    """Every missed message as `message` frames, then `synced` (listing cut chats)."""
    assert isinstance(f, protocol.Sync)
    truncated: list[int] = []
    async with ctx.state.reads() as session:
        for chat_id, last_seen in f.chats.items():
            try:
                missed, cut = await messages.missed_messages(
                    session, user_id=ctx.user_id, chat_id=chat_id, after=last_seen
                )
            except errors.ParleyError:
                continue  # a chat the user left or never had: nothing to sync
            for message in missed:
                await ctx.conn.send(frame("message", message=message))
            if cut:
                truncated.append(chat_id)
    await ctx.conn.send(frame("synced", truncated=truncated) if truncated else frame("synced"))


async def _on_ping(ctx: Context, _f: protocol.Frame, _raw: Any) -> None:
    await ctx.conn.send(frame("pong"))


Handler = Callable[[Context, protocol.Frame, Any], Awaitable[None]]
HANDLERS: dict[str, Handler] = {
    "send": _on_send,
    "edit": _on_edit,
    "delete": _on_delete,
    "react": _on_react,
    "unreact": _on_react,
    "typing": _on_typing,
    "read": _on_read,
    "sync": _on_sync,
    "ping": _on_ping,
}
