"""HTTP routes for chats and members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from parley.server.chats import personal, service, views
from parley.server.chats.access import access_chat
from parley.server.chats.schemas import (
    ChatDetail,
    ChatPublic,
    ChatSettings,
    ChatUpdate,
    DirectCreate,
    DraftSet,
    GroupCreate,
    MemberPublic,
    MembersAdd,
    RoleUpdate,
)
from parley.server.db.models import Chat, Membership
from parley.server.deps import (
    NO_CONTENT,
    Context,
    ContextDep,
    IdPath,
    PageDep,
    created_or_existing,
)
from parley.server.text import Plain

router = APIRouter(prefix="/service/api/chats", tags=["chats"])


@router.post("", status_code=201, response_model=ChatPublic)
async def create_chat(
    body: Annotated[DirectCreate | GroupCreate, Body(discriminator="type")], ctx: ContextDep
) -> JSONResponse | ChatPublic:
    max_chats = ctx.state.settings.max_chats_per_user
    if isinstance(body, DirectCreate):
        chat, membership, created = await service.create_direct(
            ctx.session,
            ctx.broker,
            ctx.actor,
            peer_id=body.user_id,
            max_chats=max_chats,
            online=ctx.state.hub.is_online,
        )
    else:
        chat, membership = await service.create_group(
            ctx.session,
            ctx.broker,
            ctx.actor,
            type=body.type,
            title=body.title,
            description=body.description,
            member_ids=body.member_ids,
            max_chats=max_chats,
        )
        created = True
    return created_or_existing(await _chat_public(ctx, chat, membership, online=True), created)


@router.get("")
async def list_chats(ctx: ContextDep) -> list[ChatPublic]:
    rows = await views.list_my_chats(ctx.session, user_id=ctx.user_id)
    return await views.chats_public(
        ctx.session,
        rows,
        viewer_id=ctx.user_id,
        now=ctx.now(),
        online=ctx.state.hub.is_online,
        all_of_viewer=True,
    )


@router.get("/public")
async def list_public(
    ctx: ContextDep, page: PageDep, q: Annotated[Plain, Query(max_length=64)] = ""
) -> list[ChatPublic]:
    rows = await views.list_public_channels(
        ctx.session, user_id=ctx.user_id, q=q.strip(), limit=page.limit, offset=page.offset
    )
    return await views.chats_public(ctx.session, rows, viewer_id=ctx.user_id, now=ctx.now())


@router.get("/{chat_id}")
async def get_chat(chat_id: IdPath, ctx: ContextDep) -> ChatDetail:
    chat, membership = await access_chat(ctx.session, user_id=ctx.user_id, chat_id=chat_id)
    return await views.chat_detail(
        ctx.session,
        chat,
        membership,
        viewer=ctx.me.user,
        now=ctx.now(),
        online=ctx.state.hub.is_online,
    )


@router.patch("/{chat_id}")
async def update_chat(chat_id: IdPath, body: ChatUpdate, ctx: ContextDep) -> ChatPublic:
    retention = (body.retention_days,) if "retention_days" in body.model_fields_set else None
    chat, membership = await service.update_chat(
        ctx.session,
        ctx.broker,
        ctx.actor,
        chat_id=chat_id,
        title=body.title,
        description=body.description,
        retention=retention,
    )
    return await _chat_public(ctx, chat, membership)


@router.patch("/{chat_id}/settings")
async def update_settings(chat_id: IdPath, body: ChatSettings, ctx: ContextDep) -> ChatPublic:
    """My own settings for the chat (members only): `muted_until` is null (not muted), an
    RFC 3339 time with an offset (a past one unmutes), or "forever". Fields left out stay."""
    chat, membership = await personal.update_settings(
        ctx.session, ctx.broker, ctx.actor, chat_id=chat_id, settings=body
    )
    return await _chat_public(ctx, chat, membership, online=True)


@router.put("/{chat_id}/draft", **NO_CONTENT)
async def put_draft(chat_id: IdPath, body: DraftSet, ctx: ContextDep) -> None:
    """My unsent text for the chat (members only), the same on every device: empty clears
    it; a change reaches my sockets as `chat_updated`."""
    await personal.set_draft(
        ctx.session, ctx.broker, ctx.actor, chat_id=chat_id, content=body.content
    )


@router.delete("/{chat_id}", **NO_CONTENT)
async def delete_chat(chat_id: IdPath, ctx: ContextDep) -> None:
    await service.delete_chat(ctx.session, ctx.broker, user_id=ctx.user_id, chat_id=chat_id)


@router.get("/{chat_id}/members")
async def list_members(chat_id: IdPath, ctx: ContextDep) -> list[MemberPublic]:
    return await _members(ctx, chat_id)


@router.post("/{chat_id}/members")
async def add_members(chat_id: IdPath, body: MembersAdd, ctx: ContextDep) -> list[MemberPublic]:
    await service.add_members(
        ctx.session,
        ctx.broker,
        ctx.actor,
        chat_id=chat_id,
        user_ids=body.user_ids,
        max_chats=ctx.state.settings.max_chats_per_user,
    )
    return await _members(ctx, chat_id)


@router.post("/{chat_id}/join")
async def join_chat(chat_id: IdPath, ctx: ContextDep) -> ChatPublic:
    chat, membership = await service.join_chat(
        ctx.session,
        ctx.broker,
        ctx.actor,
        chat_id=chat_id,
        max_chats=ctx.state.settings.max_chats_per_user,
    )
    return await _chat_public(ctx, chat, membership)


@router.delete("/{chat_id}/members/{user_id}", **NO_CONTENT)
async def remove_member(chat_id: IdPath, user_id: IdPath, ctx: ContextDep) -> None:
    await service.remove_member(
        ctx.session, ctx.broker, ctx.actor, chat_id=chat_id, target_id=user_id
    )


@router.patch("/{chat_id}/members/{user_id}")
async def set_role(
    chat_id: IdPath, user_id: IdPath, body: RoleUpdate, ctx: ContextDep
) -> MemberPublic:
    return await service.set_role(
        ctx.session, ctx.broker, ctx.actor, chat_id=chat_id, target_id=user_id, role=body.role
    )


async def _chat_public(
    ctx: Context, chat: Chat, membership: Membership, *, online: bool = False
) -> ChatPublic:
    """The chat as the caller sees it; `online`: with its peer's presence (direct chats)."""
    return await views.chat_public(
        ctx.session,
        chat,
        membership,
        viewer_id=ctx.user_id,
        now=ctx.now(),
        online=ctx.state.hub.is_online if online else views.offline,
    )


async def _members(ctx: Context, chat_id: int) -> list[MemberPublic]:
    return await views.list_members(
        ctx.session, user_id=ctx.user_id, chat_id=chat_id, online=ctx.state.hub.is_online
    )
