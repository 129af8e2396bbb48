"""HTTP routes for messages, reactions and read markers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from parley.server.accounts.routes import UPLOAD_BODY
from parley.server.deps import (
    CurrentUser,
    IdPath,
    Limit,
    Offset,
    OptionalId,
    SeqQuery,
    SessionDep,
    StateDep,
)
from parley.server.messages import attachments, search, service
from parley.server.messages.schemas import (
    AttachmentPublic,
    MessageCreate,
    MessagePublic,
    MessageUpdate,
    ReactionCreate,
    ReadMark,
)
from parley.server.text import Plain
from parley.server.uploads import read_file_part

router = APIRouter(prefix="/service/api", tags=["messages"])
MAX_PAGE = 200


@router.get("/chats/{chat_id}/messages")
async def list_messages(
    chat_id: IdPath,
    me: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    before: SeqQuery = None,
    after: SeqQuery = None,
    offset: Offset = 0,
    around: SeqQuery = None,
) -> list[MessagePublic]:
    """Ascending seq. `around=SEQ`: up to `limit` messages centred on SEQ (not with
    before/after/offset: 422)."""
    return await service.list_messages(
        session,
        user_id=me.id,
        chat_id=chat_id,
        limit=min(limit, MAX_PAGE),
        before=before,
        after=after,
        offset=offset,
        around=around,
    )


@router.get("/mentions")
async def list_mentions(
    me: CurrentUser, session: SessionDep, limit: Limit = 50, before: OptionalId = None
) -> list[MessagePublic]:
    """Messages that mention me, newest first, from chats I am a member of. Paging: pass the
    smallest message `id` of a page as `before` to get the next (older) page."""
    return await service.list_mentions(
        session, user_id=me.id, limit=min(limit, MAX_PAGE), before=before
    )


@router.post("/chats/{chat_id}/messages", status_code=201, response_model=MessagePublic)
async def send_message(
    chat_id: IdPath, body: MessageCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic | JSONResponse:
    await session.close()  # hold no transaction (on SQLite: the write lock) while it is stored
    message, created = await service.do_send(
        state.writer,
        state.checks,
        state.throttle,
        metrics=state.metrics,
        user_id=me.id,
        chat_id=chat_id,
        content=body.content,
        client_id=body.client_id,
        reply_to=body.reply_to,
        attachment_ids=body.attachment_ids,
    )
    if created:
        return message
    return JSONResponse(message.model_dump(mode="json"), status_code=200)


@router.get("/messages/{message_id}")
async def get_message(message_id: IdPath, me: CurrentUser, session: SessionDep) -> MessagePublic:
    message = await service.access_message(session, user_id=me.id, message_id=message_id)
    return await service.message_public(session, message)


@router.patch("/messages/{message_id}")
async def edit_message(
    message_id: IdPath, body: MessageUpdate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    return await service.edit_message(
        session, state.broker, user_id=me.id, message_id=message_id, content=body.content
    )


@router.delete("/messages/{message_id}", status_code=204)
async def delete_message(
    message_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.delete_message(session, state.broker, user_id=me.id, message_id=message_id)
    return Response(status_code=204)


@router.post("/messages/{message_id}/reactions")
async def add_reaction(
    message_id: IdPath, body: ReactionCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> MessagePublic:
    return await service.react(
        session, state.broker, user_id=me.id, message_id=message_id, emoji=body.emoji, add=True
    )


@router.delete("/messages/{message_id}/reactions/{emoji}", status_code=204)
async def remove_reaction(
    message_id: IdPath, emoji: str, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.react(
        session, state.broker, user_id=me.id, message_id=message_id, emoji=emoji, add=False
    )
    return Response(status_code=204)


@router.post("/chats/{chat_id}/read", status_code=204)
async def mark_read(
    chat_id: IdPath, body: ReadMark, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.mark_read(session, state.broker, user_id=me.id, chat_id=chat_id, seq=body.seq)
    return Response(status_code=204)


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
    )
    return service.attachment_public(attachment)


@router.get("/attachments/{attachment_id}", response_class=StreamingResponse)
async def download_attachment(
    attachment_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> StreamingResponse:
    attachment, chunks = await attachments.open_attachment(
        session, state.storage, user_id=me.id, attachment_id=attachment_id
    )
    await session.commit()  # end the transaction before streaming (SQLite: the write lock)
    return StreamingResponse(
        chunks,
        media_type=attachment.content_type,
        headers=attachments.download_headers(attachment),
    )


@router.get("/search")
async def search_messages(
    me: CurrentUser,
    session: SessionDep,
    q: Annotated[Plain, Query(min_length=1, max_length=200)],
    chat_id: OptionalId = None,
    limit: Limit = 20,
) -> list[MessagePublic]:
    """Messages of the caller's chats only, best match first, then newest."""
    return await search.search_messages(
        session, user_id=me.id, q=q, chat_id=chat_id, limit=min(limit, search.MAX_RESULTS)
    )
