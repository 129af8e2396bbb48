"""Invitations: admin invites (let someone register where registration needs one, and join
chosen chats) and chat invite links (join one chat, public or not).

A code is used up atomically: one UPDATE takes a use only while the invite is live (not
revoked, not expired, uses left), so two people racing for the last use cannot both get in.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.actor import Actor
from parley.server.audit import audit
from parley.server.chats import service as chats
from parley.server.chats.access import access_manager, access_member
from parley.server.db.models import Chat, Invite, Membership
from parley.server.realtime.broker import Broker


class InviteInvalid(errors.ParleyError):
    status = 410
    code = "invite_invalid"
    detail = "This invitation has expired, been used up or been revoked"


class InviteRequired(errors.Forbidden):
    code = "invite_required"
    detail = "Registration on this server needs an invitation"


class RegistrationClosed(errors.Forbidden):
    code = "registration_closed"
    detail = "Registration on this server is closed"


@dataclass(frozen=True, slots=True)
class Preview:
    chat: Chat | None
    member_count: int
    valid: bool


def new_code() -> str:
    return secrets.token_urlsafe(16)


def invite_url(base: str, code: str) -> str:
    return f"{base}/invite/{code}"


def chat_ids_of(invite: Invite) -> list[int]:
    return [int(part) for part in invite.chat_ids.split(",") if part]


def _live(now: datetime):  # type: ignore[no-untyped-def]
    """The condition of a usable invite (SQL)."""
    return (
        Invite.revoked_at.is_(None),
        or_(Invite.expires_at.is_(None), Invite.expires_at > now),
        or_(Invite.uses_left.is_(None), Invite.uses_left > 0),
    )


def is_live(invite: Invite, now: datetime) -> bool:
    return (
        invite.revoked_at is None
        and (invite.expires_at is None or invite.expires_at > now)
        and (invite.uses_left is None or invite.uses_left > 0)
    )


async def _find(session: AsyncSession, code: str) -> Invite | None:
    return (await session.execute(select(Invite).where(Invite.code == code))).scalar_one_or_none()


async def _take_use(session: AsyncSession, invite: Invite, now: datetime) -> None:
    """One use of a live invite, or InviteInvalid (also when a racer took the last one)."""
    taken = await session.execute(
        update(Invite)
        .where(Invite.id == invite.id, *_live(now))
        .values(uses_left=Invite.uses_left - 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise InviteInvalid()


# --- admin invites ---


async def create_admin_invite(
    session: AsyncSession,
    actor: Actor,
    *,
    email: str | None,
    max_uses: int,
    expires_in_seconds: int,
    chat_ids: Sequence[int],
) -> Invite:
    """Commits. Every chat of `chat_ids` must exist (404 `chat_not_found`)."""
    admin_id, now = actor
    wanted = sorted(set(chat_ids))
    if wanted:
        found = set((await session.execute(select(Chat.id).where(Chat.id.in_(wanted)))).scalars())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise errors.NotFound(f"No such chat: {missing[0]}", code="chat_not_found")
    invite = Invite(
        code=new_code(),
        chat_id=None,
        chat_ids=",".join(map(str, wanted)),
        email=email,
        created_by=admin_id,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in_seconds),
        uses_left=max_uses,
    )
    session.add(invite)
    await session.flush()
    details = {"email": email, "max_uses": max_uses, "chat_ids": wanted}
    await audit(session, admin_id, "invite.create", "invite", invite.id, details, at=now)
    await session.commit()
    return invite


async def list_admin_invites(session: AsyncSession) -> list[Invite]:
    rows = await session.execute(
        select(Invite)
        .where(Invite.chat_id.is_(None), Invite.revoked_at.is_(None))
        .order_by(Invite.id.desc())
    )
    return list(rows.scalars())


async def delete_admin_invite(session: AsyncSession, actor: Actor, *, code: str) -> None:
    """Audited (the entry keeps the email and chats it was for); commits."""
    admin_id, now = actor
    invite = await _find(session, code)
    if invite is None or invite.chat_id is not None:
        raise errors.NotFound("No such invite", code="invite_not_found")
    details = {"email": invite.email, "chat_ids": chat_ids_of(invite)}
    await audit(session, admin_id, "invite.delete", "invite", invite.id, details, at=now)
    await session.delete(invite)
    await session.commit()


async def check_registration(
    session: AsyncSession, *, mode: str, code: str | None, now: datetime
) -> Invite | None:
    """Whether someone may register now: RegistrationClosed, InviteRequired, InviteInvalid,
    else the admin invite to use (None when registration is open and none was given)."""
    if mode == "closed":
        raise RegistrationClosed()
    if code is None:
        if mode == "invite":
            raise InviteRequired()
        return None
    invite = await _find(session, code)
    if invite is None or invite.chat_id is not None or not is_live(invite, now):
        raise InviteInvalid()
    return invite


async def use_for_registration(session: AsyncSession, invite: Invite, *, now: datetime) -> None:
    """Takes one use, in the registering user's transaction (InviteInvalid if gone meanwhile)."""
    await _take_use(session, invite, now)


async def join_invited_chats(
    session: AsyncSession, broker: Broker, actor: Actor, *, invite: Invite, max_chats: int
) -> None:
    """The chats an admin invite names (each still there) are joined by the new user."""
    for chat_id in chat_ids_of(invite):
        try:
            await chats.join_chat(
                session, broker, actor, chat_id=chat_id, max_chats=max_chats, invited=True
            )
        except errors.NotFound:
            continue  # deleted since the invite was made


# --- chat invite links ---


async def current_chat_link(session: AsyncSession, actor: Actor, *, chat_id: int) -> Invite:
    user_id, now = actor
    await access_manager(session, user_id=user_id, chat_id=chat_id)
    row = (
        await session.execute(
            select(Invite)
            .where(Invite.chat_id == chat_id, *_live(now))
            .order_by(Invite.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None:
        raise errors.NotFound("This chat has no invite link", code="invite_not_found")
    return row


async def create_chat_link(
    session: AsyncSession,
    actor: Actor,
    *,
    chat_id: int,
    expires_in_seconds: int | None,
    max_uses: int | None,
) -> Invite:
    """Owner/admin of a group or channel. A new link replaces (revokes) the old one; commits."""
    user_id, now = actor
    chat, _ = await access_member(session, user_id=user_id, chat_id=chat_id)
    if chat.type == "direct":
        raise errors.ValidationFailed("A direct chat cannot be joined", code="direct_chat")
    await access_manager(session, user_id=user_id, chat_id=chat_id)
    await _revoke_links(session, chat_id, now)
    invite = Invite(
        code=new_code(),
        chat_id=chat_id,
        chat_ids="",
        created_by=user_id,
        created_at=now,
        expires_at=None
        if expires_in_seconds is None
        else now + timedelta(seconds=expires_in_seconds),
        uses_left=max_uses,
    )
    session.add(invite)
    await session.flush()
    details = {"invite_id": invite.id, "expires_at": invite.expires_at, "max_uses": max_uses}
    await audit(session, user_id, "chat.invite_link", "chat", chat_id, details, at=now)
    await session.commit()
    return invite


async def revoke_chat_link(session: AsyncSession, actor: Actor, *, chat_id: int) -> None:
    """Audited when a live link was revoked; commits."""
    user_id, now = actor
    await access_manager(session, user_id=user_id, chat_id=chat_id)
    if await _revoke_links(session, chat_id, now):
        await audit(session, user_id, "chat.invite_link_revoke", "chat", chat_id, at=now)
    await session.commit()


async def _revoke_links(session: AsyncSession, chat_id: int, now: datetime) -> int:
    """How many links were revoked."""
    done = await session.execute(
        update(Invite)
        .where(Invite.chat_id == chat_id, Invite.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


async def preview(session: AsyncSession, *, code: str, now: datetime) -> Preview:
    """What a person who is not signed in may see of a code: an unknown code is just invalid."""
    invite = await _find(session, code)
    if invite is None:
        return Preview(None, 0, False)
    chat = None if invite.chat_id is None else await session.get(Chat, invite.chat_id)
    count = 0
    if chat is not None:
        count = (
            await session.execute(
                select(func.count()).select_from(Membership).where(Membership.chat_id == chat.id)
            )
        ).scalar_one()
    return Preview(chat, count, is_live(invite, now))


async def accept(
    session: AsyncSession, broker: Broker, actor: Actor, *, code: str, max_chats: int
) -> tuple[Chat, Membership]:
    """Joins the link's chat. Already a member: the chat, no use taken. InviteInvalid when the
    code is unknown, revoked, expired or used up; an admin invite is not a chat's link (422)."""
    user_id, now = actor
    invite = await _find(session, code)
    if invite is None:
        raise InviteInvalid()
    if invite.chat_id is None:
        raise errors.ValidationFailed(
            "This invitation is for registering, not for a chat", code="not_a_chat_invite"
        )
    member = await session.get(Membership, (invite.chat_id, user_id))
    if member is not None:
        chat = await session.get(Chat, invite.chat_id)
        assert chat is not None
        return chat, member
    await _take_use(session, invite, now)
    return await chats.join_chat(
        session, broker, actor, chat_id=invite.chat_id, max_chats=max_chats, invited=True
    )
