"""HTTP routes for admin invites, chat invite links and their public preview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from parley.server.chats import views
from parley.server.chats.schemas import ChatPublic
from parley.server.db.models import Invite
from parley.server.deps import (
    NO_CONTENT,
    AdminContextDep,
    ContextDep,
    IdPath,
    SessionDep,
    StateDep,
    check_admin,
)
from parley.server.email import service as email
from parley.server.invites import service
from parley.server.invites.schemas import (
    AdminInviteCreate,
    AdminInvitePublic,
    ChatLinkCreate,
    ChatLinkPublic,
    InviteChat,
    InvitePreview,
)

router = APIRouter(prefix="/service/api", tags=["invites"])
Code = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


def _admin_invite(invite: Invite, base: str) -> AdminInvitePublic:
    return AdminInvitePublic(
        **_chat_link(invite, base).model_dump(),
        email=invite.email,
        chat_ids=service.chat_ids_of(invite),
        created_at=invite.created_at,
    )


def _chat_link(invite: Invite, base: str) -> ChatLinkPublic:
    return ChatLinkPublic(
        code=invite.code,
        url=service.invite_url(base, invite.code),
        expires_at=invite.expires_at,
        uses_left=invite.uses_left,
    )


@router.post("/admin/invites", status_code=201)
async def create_admin_invite(body: AdminInviteCreate, ctx: ContextDep) -> AdminInvitePublic:
    check_admin(ctx.me)
    state = ctx.state
    invite = await service.create_admin_invite(
        ctx.session,
        ctx.actor,
        email=str(body.email) if body.email else None,
        max_uses=body.max_uses,
        expires_in_seconds=body.expires_in_seconds,
        chat_ids=body.chat_ids,
    )
    public = _admin_invite(invite, state.settings.public_base)
    if invite.email and state.mailer.enabled:
        inviter = ctx.me.user.display_name
        email.send_invite(state.mailer, to=invite.email, url=public.url, inviter=inviter)
    return public


@router.get("/admin/invites")
async def list_admin_invites(ctx: AdminContextDep) -> list[AdminInvitePublic]:
    invites = await service.list_admin_invites(ctx.session)
    return [_admin_invite(i, ctx.state.settings.public_base) for i in invites]


@router.delete("/admin/invites/{code}", **NO_CONTENT)
async def delete_admin_invite(code: Code, ctx: ContextDep) -> None:
    check_admin(ctx.me)
    await service.delete_admin_invite(ctx.session, ctx.actor, code=code)


@router.get("/chats/{chat_id}/invite_link")
async def get_chat_link(chat_id: IdPath, ctx: ContextDep) -> ChatLinkPublic:
    invite = await service.current_chat_link(ctx.session, ctx.actor, chat_id=chat_id)
    return _chat_link(invite, ctx.state.settings.public_base)


@router.post("/chats/{chat_id}/invite_link", status_code=201)
async def create_chat_link(
    chat_id: IdPath, ctx: ContextDep, body: Annotated[ChatLinkCreate | None, Body()] = None
) -> ChatLinkPublic:
    options = body or ChatLinkCreate()
    invite = await service.create_chat_link(
        ctx.session,
        ctx.actor,
        chat_id=chat_id,
        expires_in_seconds=options.expires_in_seconds,
        max_uses=options.max_uses,
    )
    return _chat_link(invite, ctx.state.settings.public_base)


@router.delete("/chats/{chat_id}/invite_link", **NO_CONTENT)
async def revoke_chat_link(chat_id: IdPath, ctx: ContextDep) -> None:
    await service.revoke_chat_link(ctx.session, ctx.actor, chat_id=chat_id)


@router.get("/invites/{code}")
async def preview_invite(code: Code, session: SessionDep, state: StateDep) -> InvitePreview:
    """Public: what the invitation leads to, for a person who is not signed in."""
    found = await service.preview(session, code=code, now=state.clock())
    chat = None
    if found.chat is not None:
        chat = InviteChat(
            title=found.chat.title, type=found.chat.type, member_count=found.member_count
        )
    return InvitePreview(chat=chat, valid=found.valid)


@router.post("/invites/{code}/accept")
async def accept_invite(code: Code, ctx: ContextDep) -> ChatPublic:
    chat, membership = await service.accept(
        ctx.session,
        ctx.broker,
        ctx.actor,
        code=code,
        max_chats=ctx.state.settings.max_chats_per_user,
    )
    return await views.chat_public(
        ctx.session, chat, membership, viewer_id=ctx.user_id, now=ctx.now()
    )
