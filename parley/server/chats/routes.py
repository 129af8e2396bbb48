"""HTTP routes for chats and members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
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
from parley.server.deps import CurrentUser, IdPath, Limit, Offset, SessionDep, StateDep
from parley.server.text import Plain

router = APIRouter(prefix="/service/api/chats", tags=["chats"])


@router.post("", status_code=201, response_model=ChatPublic)
async def create_chat(
    body: Annotated[DirectCreate | GroupCreate, Body(discriminator="type")],
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
) -> JSONResponse | ChatPublic:
    if isinstance(body, DirectCreate):
        chat, membership, created = await service.create_direct(
            session,
            state.broker,
            user_id=me.id,
            peer_id=body.user_id,
            max_chats=state.settings.max_chats_per_user,
            now=state.clock(),
            online=state.hub.is_online,
        )
    else:
        chat, membership = await service.create_group(
            session,
            state.broker,
            user_id=me.id,
            type=body.type,
            title=body.title,
            description=body.description,
            member_ids=body.member_ids,
            max_chats=state.settings.max_chats_per_user,
            now=state.clock(),
        )
        created = True
    public = await views.chat_public(
        session, chat, membership, viewer_id=me.id, now=state.clock(), online=state.hub.is_online
    )
    if created:
        return public
    return JSONResponse(public.model_dump(mode="json"), status_code=200)


@router.get("")
async def list_chats(me: CurrentUser, session: SessionDep, state: StateDep) -> list[ChatPublic]:
    rows = await views.list_my_chats(session, user_id=me.id)
    return await views.chats_public(
        session,
        rows,
        viewer_id=me.id,
        now=state.clock(),
        online=state.hub.is_online,
        all_of_viewer=True,
    )


@router.get("/public")
async def list_public(
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
    q: Annotated[Plain, Query(max_length=64)] = "",
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[ChatPublic]:
    rows = await views.list_public_channels(
        session, user_id=me.id, q=q.strip(), limit=min(limit, 200), offset=offset
    )
    return await views.chats_public(session, rows, viewer_id=me.id, now=state.clock())


@router.get("/{chat_id}")
async def get_chat(
    chat_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> ChatDetail:
    chat, membership = await access_chat(session, user_id=me.id, chat_id=chat_id)
    return await views.chat_detail(
        session, chat, membership, viewer=me.user, now=state.clock(), online=state.hub.is_online
    )


@router.patch("/{chat_id}")
async def update_chat(
    chat_id: IdPath, body: ChatUpdate, me: CurrentUser, session: SessionDep, state: StateDep
) -> ChatPublic:
    chat, membership = await service.update_chat(
        session,
        state.broker,
        user_id=me.id,
        chat_id=chat_id,
        title=body.title,
        description=body.description,
        retention=(body.retention_days,) if "retention_days" in body.model_fields_set else None,
        now=state.clock(),
    )
    return await views.chat_public(session, chat, membership, viewer_id=me.id, now=state.clock())


@router.patch("/{chat_id}/settings")
async def update_settings(
    chat_id: IdPath, body: ChatSettings, me: CurrentUser, session: SessionDep, state: StateDep
) -> ChatPublic:
    """My own settings for the chat (members only): `muted_until` is null (not muted), an
    RFC 3339 time with an offset (a past one unmutes), or "forever". Fields left out stay."""
    now = state.clock()
    chat, membership = await personal.update_settings(
        session, state.broker, user_id=me.id, chat_id=chat_id, settings=body, now=now
    )
    return await views.chat_public(
        session, chat, membership, viewer_id=me.id, now=now, online=state.hub.is_online
    )


@router.put("/{chat_id}/draft", status_code=204)
async def put_draft(
    chat_id: IdPath, body: DraftSet, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    """My unsent text for the chat (members only), the same on every device: empty clears
    it; a change reaches my sockets as `chat_updated`."""
    await personal.set_draft(
        session, state.broker, user_id=me.id, chat_id=chat_id, content=body.content,
        now=state.clock(),
    )  # fmt: skip
    return Response(status_code=204)


@router.delete("/{chat_id}", status_code=204)
async def delete_chat(
    chat_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.delete_chat(session, state.broker, user_id=me.id, chat_id=chat_id)
    return Response(status_code=204)


@router.get("/{chat_id}/members")
async def list_members(
    chat_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> list[MemberPublic]:
    return await views.list_members(
        session, user_id=me.id, chat_id=chat_id, online=state.hub.is_online
    )


@router.post("/{chat_id}/members")
async def add_members(
    chat_id: IdPath, body: MembersAdd, me: CurrentUser, session: SessionDep, state: StateDep
) -> list[MemberPublic]:
    await service.add_members(
        session,
        state.broker,
        user_id=me.id,
        chat_id=chat_id,
        user_ids=body.user_ids,
        max_chats=state.settings.max_chats_per_user,
        now=state.clock(),
    )
    return await views.list_members(
        session, user_id=me.id, chat_id=chat_id, online=state.hub.is_online
    )


@router.post("/{chat_id}/join")
async def join_chat(
    chat_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> ChatPublic:
    chat, membership = await service.join_chat(
        session,
        state.broker,
        user_id=me.id,
        chat_id=chat_id,
        max_chats=state.settings.max_chats_per_user,
        now=state.clock(),
    )
    return await views.chat_public(session, chat, membership, viewer_id=me.id, now=state.clock())


@router.delete("/{chat_id}/members/{user_id}", status_code=204)
async def remove_member(
    chat_id: IdPath, user_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await service.remove_member(
        session, state.broker, user_id=me.id, chat_id=chat_id, target_id=user_id, now=state.clock()
    )
    return Response(status_code=204)


@router.patch("/{chat_id}/members/{user_id}")
async def set_role(
    chat_id: IdPath,
    user_id: IdPath,
    body: RoleUpdate,
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
) -> MemberPublic:
    return await service.set_role(
        session,
        state.broker,
        user_id=me.id,
        chat_id=chat_id,
        target_id=user_id,
        role=body.role,
        now=state.clock(),
    )
