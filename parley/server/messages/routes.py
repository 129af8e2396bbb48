"""HTTP routes for messages, reactions and read markers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from parley import errors
from parley.server.accounts.routes import UPLOAD_BODY
from parley.server.deps import (
    CallerDep,
    CurrentUser,
    IdPath,
    Limit,
    Offset,
    OptionalId,
    SeqQuery,
    SessionDep,
    StateDep,
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
MAX_PAGE = 200
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
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
    limit: Limit = 50,
    before: OptionalId = None,
) -> list[MessagePublic]:
    """Messages that mention me, newest first, from chats I am a member of. Paging: pass the
    smallest message `id` of a page as `before` to get the next (older) page."""
    return await service.list_mentions(
        session, user_id=me.id, limit=min(limit, MAX_PAGE), before=before, now=state.clock()
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
    if created:
        return message
    return JSONResponse(message.model_dump(mode="json"), status_code=200)


@router.get("/messages/{message_id}")
async def get_message(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    message = await service.access_message(
        session, user_id=me.id, message_id=message_id, now=state.clock()
    )
    return await service.message_public(session, message)


@router.patch("/messages/{message_id}")
async def edit_message(
    message_id: IdPath, body: MessageUpdate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    return await service.edit_message(
        session,
        state.broker,
        user_id=me.id,
        message_id=message_id,
        content=body.content,
        now=state.clock(),
    )


@router.delete("/messages/{message_id}", status_code=204)
async def delete_message(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.delete_message(
        session, state.broker, user_id=me.id, message_id=message_id, now=state.clock()
    )
    return Response(status_code=204)


@router.delete("/messages/{message_id}/preview", status_code=204)
async def remove_preview(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    """The author removes the message's link preview."""
    await previews.remove_preview(
        session,
        state.broker,
        state.storage,
        user_id=me.id,
        message_id=message_id,
        now=state.clock(),
    )
    return Response(status_code=204)


@router.post("/messages/{message_id}/reactions")
async def add_reaction(
    message_id: IdPath, body: ReactionCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    return await reactions.react(
        session,
        state.broker,
        user_id=me.id,
        message_id=message_id,
        emoji=body.emoji,
        add=True,
        now=state.clock(),
        max_reactions=state.settings.max_reactions,
    )


@router.delete("/messages/{message_id}/reactions/{emoji}", status_code=204)
async def remove_reaction(
    message_id: IdPath, emoji: str, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await reactions.react(
        session,
        state.broker,
        user_id=me.id,
        message_id=message_id,
        emoji=emoji,
        add=False,
        now=state.clock(),
        max_reactions=state.settings.max_reactions,
    )
    return Response(status_code=204)


@router.post("/chats/{chat_id}/read", status_code=204)
async def mark_read(
    chat_id: IdPath, body: ReadMark, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await reactions.mark_read(session, state.broker, user_id=me.id, chat_id=chat_id, seq=body.seq)
    return Response(status_code=204)


@router.get("/messages/{message_id}/thread")
async def get_thread(
    message_id: IdPath,
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
    limit: Limit = 50,
    after: SeqQuery = None,
    before: SeqQuery = None,
) -> ThreadPage:
    """The root and a page of its replies, ascending (default: the newest `limit`)."""
    return await threads.list_thread(
        session,
        user_id=me.id,
        root_id=message_id,
        limit=min(limit, MAX_PAGE),
        after=after,
        before=before,
        now=state.clock(),
    )


@router.post("/chats/{chat_id}/unread", status_code=204)
async def mark_unread(
    chat_id: IdPath, body: ReadMark, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    """My read marker moves back to `seq` - 1 (never forward); my sockets get `read`."""
    await reactions.mark_unread(session, state.broker, user_id=me.id, chat_id=chat_id, seq=body.seq)
    return Response(status_code=204)


@router.get("/chats/{chat_id}/pins")
async def list_pins(
    chat_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> list[MessagePublic]:
    """The chat's pinned messages, most recently pinned first (at most 50)."""
    return await pins.list_pins(session, user_id=me.id, chat_id=chat_id, now=state.clock())


@router.post("/chats/{chat_id}/pins")
async def pin_message(
    chat_id: IdPath, body: PinCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    """Members who may post (direct chats, groups); owners and admins (channels). 409
    `too_many_pins` past 50."""
    return await pins.pin_message(
        session,
        state.broker,
        state.checks,
        user_id=me.id,
        chat_id=chat_id,
        message_id=body.message_id,
        now=state.clock(),
    )


@router.put("/messages/{message_id}/follow", status_code=204)
async def follow_thread(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await threads.follow_thread(
        session, user_id=me.id, root_id=message_id, following=True, now=state.clock()
    )
    return Response(status_code=204)


@router.delete("/chats/{chat_id}/pins/{message_id}", status_code=204)
async def unpin_message(
    chat_id: IdPath, message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await pins.unpin_message(
        session,
        state.broker,
        state.checks,
        user_id=me.id,
        chat_id=chat_id,
        message_id=message_id,
        now=state.clock(),
    )
    return Response(status_code=204)


@router.delete("/messages/{message_id}/follow", status_code=204)
async def unfollow_thread(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await threads.follow_thread(
        session, user_id=me.id, root_id=message_id, following=False, now=state.clock()
    )
    return Response(status_code=204)


@router.get("/threads")
async def list_threads(
    me: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    before: Annotated[datetime | None, Query()] = None,
) -> list[FollowedThread]:
    """Threads I follow, the most recent reply first. Paging: pass a page's last
    `last_reply_at` as `before`."""
    return await threads.list_threads(
        session, user_id=me.id, limit=min(limit, MAX_PAGE), before=before
    )


@router.post("/messages/{message_id}/thread/read", status_code=204)
async def mark_thread_read(
    message_id: IdPath, body: ReadMark, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await threads.mark_thread_read(
        session, state.broker, user_id=me.id, root_id=message_id, seq=body.seq, now=state.clock()
    )
    return Response(status_code=204)


@router.post("/messages/{message_id}/forward", status_code=201)
async def forward_message(
    message_id: IdPath, body: ForwardCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> list[MessagePublic]:
    """One copy per target chat, each after the `comment` when given; all or nothing."""
    return await forwarding.forward_message(
        session,
        state.broker,
        state.checks,
        state.throttle,
        state.storage,
        user_id=me.id,
        message_id=message_id,
        chat_ids=body.chat_ids,
        comment=body.comment,
        now=state.clock(),
    )


@router.post("/chats/{chat_id}/attachments", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_attachment(
    chat_id: IdPath, request: Request, me: CurrentUser, session: SessionDep, state: StateDep
) -> AttachmentPublic:
    room = await attachments.check_can_upload(
        session, user_id=me.id, chat_id=chat_id, quota=state.settings.upload_quota_bytes
    )
    limit = state.settings.max_attachment_bytes
    part = await read_file_part(request, max_bytes=limit)
    attachment = await attachments.upload_attachment(
        session,
        state.storage,
        user_id=me.id,
        chat_id=chat_id,
        part=part,
        room=room,
        max_bytes=limit,
        now=state.clock(),
    )
    return attachment_public(attachment)


@router.get("/attachments/{attachment_id}", response_class=StreamingResponse)
async def download_attachment(
    attachment_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> StreamingResponse:
    attachment, chunks = await attachments.open_attachment(
        session, state.storage, user_id=me.id, attachment_id=attachment_id, now=state.clock()
    )
    await session.commit()  # end the transaction before streaming (SQLite: the write lock)
    return StreamingResponse(
        chunks,
        media_type=attachment.content_type,
        headers=attachments.download_headers(attachment),
    )


@router.get("/chats/{chat_id}/files")
async def chat_files(
    chat_id: IdPath,
    me: CurrentUser,
    session: SessionDep,
    before: OptionalId = None,
    limit: Limit = 50,
) -> list[ChatFilePublic]:
    """The attachments of the chat's messages, newest first (`before`: an attachment id)."""
    return await files.chat_files(
        session, user_id=me.id, chat_id=chat_id, before=before, limit=limit
    )


@router.get("/search")
async def search_messages(
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
    q: Annotated[Plain, Query(min_length=1, max_length=200)],
    chat_id: OptionalId = None,
    before: OptionalId = None,
    limit: Limit = 20,
) -> list[MessagePublic]:
    """Messages of the caller's chats only, newest first (`before`: a message id); the
    query's words and operators as parley/server/messages/search.py reads them."""
    return await search.search_messages(
        session,
        user_id=me.id,
        q=q,
        chat_id=chat_id,
        before=before,
        limit=min(limit, search.MAX_RESULTS),
        now=state.clock(),
    )


# --- scheduled messages (presence of mind) -------------------------------------------------


async def _schedule(
    chat_id: int, body: MessageCreate, user_id: int, session: SessionDep, state: StateDep
) -> JSONResponse:
    assert body.send_at is not None
    if body.attachment_ids or body.reply_to is not None or body.thread_root_id is not None:
        raise errors.ValidationFailed("A scheduled message carries text only (no thread reply)")
    row = await scheduled.schedule_message(
        session, state.checks, user_id=user_id, chat_id=chat_id, content=body.content,
        send_at=body.send_at, now=state.clock(),
    )  # fmt: skip
    public = scheduled.scheduled_public(row)
    return JSONResponse(public.model_dump(mode="json"), status_code=202)


@router.get("/scheduled")
async def list_scheduled(
    me: CurrentUser, session: SessionDep, chat_id: OptionalId = None
) -> list[ScheduledPublic]:
    """My scheduled messages, the soonest first (`chat_id`: of one chat)."""
    rows = await scheduled.list_scheduled(session, user_id=me.id, chat_id=chat_id)
    return [scheduled.scheduled_public(row) for row in rows]


@router.patch("/scheduled/{scheduled_id}")
async def update_scheduled(
    scheduled_id: IdPath,
    body: ScheduledUpdate,
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
) -> ScheduledPublic:
    row = await scheduled.update_scheduled(
        session, user_id=me.id, scheduled_id=scheduled_id, content=body.content,
        send_at=body.send_at, now=state.clock(),
    )  # fmt: skip
    return scheduled.scheduled_public(row)


@router.delete("/scheduled/{scheduled_id}", status_code=204)
async def delete_scheduled(scheduled_id: IdPath, me: CurrentUser, session: SessionDep) -> Response:
    await scheduled.delete_scheduled(session, user_id=me.id, scheduled_id=scheduled_id)
    return Response(status_code=204)
