"""HTTP routes for messages, reactions and read markers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from parley import errors
from parley.server.accounts.routes import UPLOAD_BODY
from parley.server.actor import Actor
from parley.server.deps import (
    MAX_PAGE,
    NO_CONTENT,
    CallerDep,
    Context,
    ContextDep,
    CurrentUser,
    IdPath,
    Limit,
    Offset,
    OptionalId,
    SeqQuery,
    SessionDep,
    StateDep,
    created_or_existing,
)
from parley.server.messages import (
    attachments,
    files,
    forwarding,
    history,
    pins,
    reactions,
    scheduled,
    search,
    service,
    threads,
)
from parley.server.messages.public import attachment_public
from parley.server.messages.schemas import (
    AttachmentPublic,
    ChatFilePublic,
    FollowedThread,
    ForwardCreate,
    MessageCreate,
    MessagePublic,
    MessageUpdate,
    PinCreate,
    ReactionCreate,
    ReadMark,
    ScheduledPublic,
    ScheduledUpdate,
    ThreadPage,
)
from parley.server.previews import service as previews
from parley.server.text import Plain
from parley.server.uploads import read_file_part

router = APIRouter(prefix="/service/api", tags=["messages"])
ThreadFilter = Annotated[Literal["main"] | None, Query()]


@router.get("/chats/{chat_id}/messages", response_model=list[MessagePublic])
async def list_messages(
    chat_id: IdPath,
    me: CallerDep,
    state: StateDep,
    limit: Limit = 50,
    before: SeqQuery = None,
    after: SeqQuery = None,
    offset: Offset = 0,
    around: SeqQuery = None,
    thread: ThreadFilter = None,
) -> Response:
    """Ascending seq. `around=SEQ`: up to `limit` messages centred on SEQ (not with
    before/after/offset: 422). `thread=main`: the main timeline (no thread replies but
    those also in the chat)."""
    body = await history.history_page(
        state.pages,
        state.checks,
        state.reads,
        user_id=me.id,
        chat_id=chat_id,
        paging=history.Paging(
            min(limit, MAX_PAGE),
            before=before,
            after=after,
            offset=offset,
            around=around,
            main_only=thread == "main",
        ),
    )
    return Response(body, media_type="application/json")


@router.get("/mentions")
async def list_mentions(
    ctx: ContextDep, limit: Limit = 50, before: OptionalId = None
) -> list[MessagePublic]:
    """Messages that mention me, newest first, from chats I am a member of. Paging: pass the
    smallest message `id` of a page as `before` to get the next (older) page."""
    return await service.list_mentions(
        ctx.session, user_id=ctx.user_id, limit=min(limit, MAX_PAGE), before=before, now=ctx.now()
    )


@router.post(
    "/chats/{chat_id}/messages",
    status_code=201,
    response_model=MessagePublic,
    responses={202: {"model": ScheduledPublic, "description": "Scheduled (`send_at`)"}},
)
async def send_message(
    chat_id: IdPath, body: MessageCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic | JSONResponse:
    """With `send_at`: kept until then (202, a scheduled message only its author sees)."""
    if body.send_at is not None:
        return await _schedule(chat_id, body, me.id, session, state)
    await session.close()  # hold no transaction (on SQLite: the write lock) while it is stored
    message, created = await service.do_send(
        state.writer,
        state.checks,
        state.throttle,
        metrics=state.metrics,
        **service.send_of(body, user_id=me.id, chat_id=chat_id),
    )
    return created_or_existing(message, created)


@router.get("/messages/{message_id}")
async def get_message(message_id: IdPath, ctx: ContextDep) -> MessagePublic:
    message = await service.access_message(
        ctx.session, user_id=ctx.user_id, message_id=message_id, now=ctx.now()
    )
    return await service.message_public(ctx.session, message)


@router.patch("/messages/{message_id}")
async def edit_message(message_id: IdPath, body: MessageUpdate, ctx: ContextDep) -> MessagePublic:
    return await service.edit_message(
        ctx.session,
        ctx.broker,
        user_id=ctx.user_id,
        message_id=message_id,
        content=body.content,
        now=ctx.now(),
    )


@router.delete("/messages/{message_id}", **NO_CONTENT)
async def delete_message(message_id: IdPath, ctx: ContextDep) -> None:
    await service.delete_message(
        ctx.session, ctx.broker, user_id=ctx.user_id, message_id=message_id, now=ctx.now()
    )


@router.delete("/messages/{message_id}/preview", **NO_CONTENT)
async def remove_preview(message_id: IdPath, ctx: ContextDep) -> None:
    """The author removes the message's link preview."""
    await previews.remove_preview(
        ctx.session,
        ctx.broker,
        ctx.state.storage,
        user_id=ctx.user_id,
        message_id=message_id,
        now=ctx.now(),
    )


@router.post("/messages/{message_id}/reactions")
async def add_reaction(message_id: IdPath, body: ReactionCreate, ctx: ContextDep) -> MessagePublic:
    return await _react(ctx, message_id, body.emoji, add=True)


@router.delete("/messages/{message_id}/reactions/{emoji}", **NO_CONTENT)
async def remove_reaction(message_id: IdPath, emoji: str, ctx: ContextDep) -> None:
    await _react(ctx, message_id, emoji, add=False)


async def _react(ctx: Context, message_id: int, emoji: str, *, add: bool) -> MessagePublic:
    return await reactions.react(
        ctx.session,
        ctx.broker,
        user_id=ctx.user_id,
        message_id=message_id,
        emoji=emoji,
        add=add,
        now=ctx.now(),
        max_reactions=ctx.state.settings.max_reactions,
    )


@router.post("/chats/{chat_id}/read", **NO_CONTENT)
async def mark_read(chat_id: IdPath, body: ReadMark, ctx: ContextDep) -> None:
    await reactions.mark_read(
        ctx.session, ctx.broker, user_id=ctx.user_id, chat_id=chat_id, seq=body.seq
    )


@router.get("/messages/{message_id}/thread")
async def get_thread(
    message_id: IdPath,
    ctx: ContextDep,
    limit: Limit = 50,
    after: SeqQuery = None,
    before: SeqQuery = None,
) -> ThreadPage:
    """The root and a page of its replies, ascending (default: the newest `limit`)."""
    return await threads.list_thread(
        ctx.session,
        user_id=ctx.user_id,
        root_id=message_id,
        limit=min(limit, MAX_PAGE),
        after=after,
        before=before,
        now=ctx.now(),
    )


@router.post("/chats/{chat_id}/unread", **NO_CONTENT)
async def mark_unread(chat_id: IdPath, body: ReadMark, ctx: ContextDep) -> None:
    """My read marker moves back to `seq` - 1 (never forward); my sockets get `read`."""
    await reactions.mark_unread(
        ctx.session, ctx.broker, user_id=ctx.user_id, chat_id=chat_id, seq=body.seq
    )


@router.get("/chats/{chat_id}/pins")
async def list_pins(chat_id: IdPath, ctx: ContextDep) -> list[MessagePublic]:
    """The chat's pinned messages, most recently pinned first (at most 50)."""
    return await pins.list_pins(ctx.session, ctx.actor, chat_id=chat_id)


@router.post("/chats/{chat_id}/pins")
async def pin_message(chat_id: IdPath, body: PinCreate, ctx: ContextDep) -> MessagePublic:
    """Members who may post (direct chats, groups); owners and admins (channels). 409
    `too_many_pins` past 50."""
    return await _set_pinned(ctx, chat_id, body.message_id, pinned=True)


@router.delete("/chats/{chat_id}/pins/{message_id}", **NO_CONTENT)
async def unpin_message(chat_id: IdPath, message_id: IdPath, ctx: ContextDep) -> None:
    await _set_pinned(ctx, chat_id, message_id, pinned=False)


async def _set_pinned(
    ctx: Context, chat_id: int, message_id: int, *, pinned: bool
) -> MessagePublic:
    return await pins.set_pinned(
        ctx.session,
        ctx.broker,
        ctx.state.checks,
        ctx.actor,
        chat_id=chat_id,
        message_id=message_id,
        pinned=pinned,
    )


@router.put("/messages/{message_id}/follow", **NO_CONTENT)
async def follow_thread(message_id: IdPath, ctx: ContextDep) -> None:
    await threads.follow_thread(
        ctx.session, user_id=ctx.user_id, root_id=message_id, following=True, now=ctx.now()
    )


@router.delete("/messages/{message_id}/follow", **NO_CONTENT)
async def unfollow_thread(message_id: IdPath, ctx: ContextDep) -> None:
    await threads.follow_thread(
        ctx.session, user_id=ctx.user_id, root_id=message_id, following=False, now=ctx.now()
    )


@router.get("/threads")
async def list_threads(
    ctx: ContextDep, limit: Limit = 50, before: Annotated[datetime | None, Query()] = None
) -> list[FollowedThread]:
    """Threads I follow, the most recent reply first. Paging: pass a page's last
    `last_reply_at` as `before`."""
    return await threads.list_threads(
        ctx.session, user_id=ctx.user_id, limit=min(limit, MAX_PAGE), before=before
    )


@router.post("/messages/{message_id}/thread/read", **NO_CONTENT)
async def mark_thread_read(message_id: IdPath, body: ReadMark, ctx: ContextDep) -> None:
    await threads.mark_thread_read(
        ctx.session,
        ctx.broker,
        user_id=ctx.user_id,
        root_id=message_id,
        seq=body.seq,
        now=ctx.now(),
    )


@router.post("/messages/{message_id}/forward", status_code=201)
async def forward_message(
    message_id: IdPath, body: ForwardCreate, ctx: ContextDep
) -> list[MessagePublic]:
    """One copy per target chat, each after the `comment` when given; all or nothing."""
    state = ctx.state
    return await forwarding.forward_message(
        ctx.session,
        ctx.broker,
        state.checks,
        state.throttle,
        state.storage,
        user_id=ctx.user_id,
        message_id=message_id,
        chat_ids=body.chat_ids,
        comment=body.comment,
        now=ctx.now(),
    )


@router.post("/chats/{chat_id}/attachments", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_attachment(chat_id: IdPath, request: Request, ctx: ContextDep) -> AttachmentPublic:
    settings = ctx.state.settings
    room = await attachments.check_can_upload(
        ctx.session, user_id=ctx.user_id, chat_id=chat_id, quota=settings.upload_quota_bytes
    )
    limit = settings.max_attachment_bytes
    part = await read_file_part(request, max_bytes=limit)
    attachment = await attachments.upload_attachment(
        ctx.session,
        ctx.state.storage,
        user_id=ctx.user_id,
        chat_id=chat_id,
        part=part,
        room=room,
        max_bytes=limit,
        now=ctx.now(),
    )
    return attachment_public(attachment)


@router.get("/attachments/{attachment_id}", response_class=StreamingResponse)
async def download_attachment(attachment_id: IdPath, ctx: ContextDep) -> StreamingResponse:
    attachment, chunks = await attachments.open_attachment(
        ctx.session,
        ctx.state.storage,
        user_id=ctx.user_id,
        attachment_id=attachment_id,
        now=ctx.now(),
    )
    await ctx.session.commit()  # end the transaction before streaming (SQLite: the write lock)
    return StreamingResponse(
        chunks,
        media_type=attachment.content_type,
        headers=attachments.download_headers(attachment),
    )


@router.get("/chats/{chat_id}/files")
async def chat_files(
    chat_id: IdPath, ctx: ContextDep, before: OptionalId = None, limit: Limit = 50
) -> list[ChatFilePublic]:
    """The attachments of the chat's messages, newest first (`before`: an attachment id)."""
    return await files.chat_files(
        ctx.session, user_id=ctx.user_id, chat_id=chat_id, before=before, limit=limit
    )


@router.get("/search")
async def search_messages(
    ctx: ContextDep,
    q: Annotated[Plain, Query(min_length=1, max_length=200)],
    chat_id: OptionalId = None,
    before: OptionalId = None,
    limit: Limit = 20,
) -> list[MessagePublic]:
    """Messages of the caller's chats only, newest first (`before`: a message id); the
    query's words and operators as parley/server/messages/search.py reads them."""
    return await search.search_messages(
        ctx.session,
        user_id=ctx.user_id,
        q=q,
        chat_id=chat_id,
        before=before,
        limit=min(limit, search.MAX_RESULTS),
        now=ctx.now(),
    )


# --- scheduled messages (presence of mind) -------------------------------------------------


async def _schedule(
    chat_id: int, body: MessageCreate, user_id: int, session: SessionDep, state: StateDep
) -> JSONResponse:
    assert body.send_at is not None
    if body.attachment_ids or body.reply_to is not None or body.thread_root_id is not None:
        raise errors.ValidationFailed("A scheduled message carries text only (no thread reply)")
    row = await scheduled.schedule_message(
        session, state.checks, Actor(user_id, state.clock()), chat_id=chat_id,
        content=body.content, send_at=body.send_at,
    )  # fmt: skip
    public = scheduled.scheduled_public(row)
    return JSONResponse(public.model_dump(mode="json"), status_code=202)


@router.get("/scheduled")
async def list_scheduled(ctx: ContextDep, chat_id: OptionalId = None) -> list[ScheduledPublic]:
    """My scheduled messages, the soonest first (`chat_id`: of one chat)."""
    rows = await scheduled.list_scheduled(ctx.session, user_id=ctx.user_id, chat_id=chat_id)
    return [scheduled.scheduled_public(row) for row in rows]


@router.patch("/scheduled/{scheduled_id}")
async def update_scheduled(
    scheduled_id: IdPath, body: ScheduledUpdate, ctx: ContextDep
) -> ScheduledPublic:
    row = await scheduled.update_scheduled(
        ctx.session,
        ctx.actor,
        scheduled_id=scheduled_id,
        content=body.content,
        send_at=body.send_at,
    )
    return scheduled.scheduled_public(row)


@router.delete("/scheduled/{scheduled_id}", **NO_CONTENT)
async def delete_scheduled(scheduled_id: IdPath, ctx: ContextDep) -> None:
    await scheduled.delete_scheduled(ctx.session, user_id=ctx.user_id, scheduled_id=scheduled_id)
