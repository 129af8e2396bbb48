"""One handler per client frame type, registered with `@handles` (protocol.py declares
the frames; a frame type without a handler fails at import, at the end of this module).

Handlers only translate: each calls the same domain function as the REST route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from parley import errors
from parley.server import problems
from parley.server.chats.general import general_id
from parley.server.deps import AppState
from parley.server.messages import reactions
from parley.server.messages import service as messages
from parley.server.messages.drafts import Result
from parley.server.realtime import frames, protocol
from parley.server.realtime.connection import Connection
from parley.server.realtime.events import ChatFrame

MAX_UNACKED = 64  # sends of one socket waiting for their commit; past it, reading waits
SYNC_CHATS_PER_READ = 10  # chats one sync reads per pooled connection (then sends them)


@dataclass(slots=True)
class Context:
    state: AppState
    user_id: int
    conn: Connection
    unacked: set[asyncio.Future[Result]] = field(default_factory=set)
    gone: bool = False  # the client disconnected: what it queued is dropped unprocessed

    def alive(self) -> bool:
        return not self.gone and not self.conn.closing


async def handle(ctx: Context, text: str) -> None:
    """Decodes, validates, rate-limits and serves one client frame; what fails becomes an
    error frame on this socket (the connection stays open)."""
    raw: Any = None
    try:
        raw = protocol.decode(text)  # known before validation, so errors can echo its ref
        parsed = protocol.parse(raw)
        await _check_rate(ctx, parsed)
        await HANDLERS[parsed.kind](ctx, parsed, raw)
    except Exception as exc:
        ctx.conn.push(error_frame(ctx.state, exc, protocol.ref_of(raw)))


def error_frame(state: AppState, exc: BaseException, ref: Any) -> str:
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
        alive=ctx.alive,
        **messages.send_of(f, user_id=ctx.user_id, chat_id=chat_id),
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
            ctx.conn.push(error_frame(state, exc, ref))
            return
        message, created = fut.result()
        if state.metrics is not None:
            state.metrics.record_send(state.clock.monotonic() - started, created=created)
        if not created:  # a resend: acknowledge again with the stored message
            ctx.conn.push(frames.NewMessage(message).encode())

    future.add_done_callback(done)


async def _write(ctx: Context, write: Callable[..., Awaitable[object]]) -> None:
    """Runs a domain write (`write(session, broker, user_id=...)`, the rest of its
    arguments bound) as the socket's user, in a session of its own."""
    async with ctx.state.sessions() as session:
        await write(session, ctx.state.broker, user_id=ctx.user_id)


@handles(protocol.Edit)
async def _on_edit(ctx: Context, f: protocol.Edit, _raw: Any) -> None:
    now = ctx.state.clock()
    edit = partial(messages.edit_message, message_id=f.message_id, content=f.content, now=now)
    await _write(ctx, edit)


@handles(protocol.Delete)
async def _on_delete(ctx: Context, f: protocol.Delete, _raw: Any) -> None:
    now = ctx.state.clock()
    await _write(ctx, partial(messages.delete_message, message_id=f.message_id, now=now))


@handles(protocol.React, protocol.Unreact)
async def _on_react(ctx: Context, f: protocol.React, _raw: Any) -> None:
    react = partial(
        reactions.react,
        message_id=f.message_id,
        emoji=f.emoji,
        add=f.kind == "react",
        now=ctx.state.clock(),
        max_reactions=ctx.state.settings.max_reactions,
    )
    await _write(ctx, react)


@handles(protocol.Typing)
async def _on_typing(ctx: Context, f: protocol.Typing, _raw: Any) -> None:
    if f.chat_id not in ctx.conn.chats:
        raise errors.NotMember()
    if not await ctx.state.throttle.allow("typing", ctx.user_id):
        return  # typing is advisory: extra frames are dropped, not refused
    if await ctx.state.checks.chat_size(f.chat_id) > ctx.state.settings.typing_max_members:
        return  # nobody reads "someone is typing" among thousands: not worth the fan-out
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
    await _write(ctx, partial(reactions.mark_read, chat_id=f.chat_id, seq=f.seq))


@handles(protocol.Sync)
async def _on_sync(ctx: Context, f: protocol.Sync, _raw: Any) -> None:
    """Every missed message as `message` frames, then `synced` (listing cut chats).

    `SYNC_CHATS_PER_READ` chats at a time: their rows are loaded together (a fixed number
    of queries) on one pooled connection, the session is released, then they are sent,
    so a client that stops reading never holds the database (its send waits are bounded),
    and a reconnect storm takes one connection per sync rather than one per chat. First,
    one query finds the named chats that have anything after what the client saw: only
    those are read.
    """
    truncated: list[int] = []
    async with ctx.state.reads() as session:
        news = await messages.chats_with_news(session, user_id=ctx.user_id, seen=f.chats)
    chats = [(chat_id, seen) for chat_id, seen in f.chats.items() if chat_id in news]
    for start in range(0, len(chats), SYNC_CHATS_PER_READ):
        if not ctx.alive():
            return
        async with ctx.state.reads() as session:
            loaded = await messages.missed_in_chats(
                session,
                user_id=ctx.user_id,
                seen=dict(chats[start : start + SYNC_CHATS_PER_READ]),
                now=ctx.state.clock(),
            )
        for chat_id, missed, cut in loaded:
            for message in missed:
                await ctx.conn.send(frames.NewMessage(message).encode())
            if cut:
                truncated.append(chat_id)
    await ctx.conn.send(frames.Synced(truncated).encode())


@handles(protocol.PresenceQuery)
async def _on_presence_query(ctx: Context, f: protocol.PresenceQuery, _raw: Any) -> None:
    """One `presence` frame per asked user that shares a chat with the caller."""
    for answer in await ctx.state.presence.query(ctx.user_id, f.user_ids):
        await ctx.conn.send(answer)


@handles(protocol.Ping)
async def _on_ping(ctx: Context, _f: protocol.Ping, _raw: Any) -> None:
    await ctx.conn.send(frames.Pong().encode())


protocol.check_handled(HANDLERS)
