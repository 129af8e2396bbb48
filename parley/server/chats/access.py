"""The one permission gate for chats: who may see, write to and manage a chat."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.db.models import Chat, Membership

MANAGERS = frozenset({"owner", "admin"})


async def get_membership(session: AsyncSession, chat_id: int, user_id: int) -> Membership | None:
    return await session.get(Membership, (chat_id, user_id))


async def access_chat(
    session: AsyncSession, *, user_id: int, chat_id: int
) -> tuple[Chat, Membership | None]:
    """A chat the user may read: a member's, or a public channel. Else NotFound, never 403,
    so a private chat's existence does not leak."""
    row = (
        await session.execute(
            select(Chat, Membership)
            .outerjoin(
                Membership, (Membership.chat_id == Chat.id) & (Membership.user_id == user_id)
            )
            .where(Chat.id == chat_id)
        )
    ).first()
    if row is None or (row[1] is None and not row[0].is_public):
        raise errors.NotFound("No such chat", code="chat_not_found")
    return row[0], row[1]


async def access_member(
    session: AsyncSession, *, user_id: int, chat_id: int
) -> tuple[Chat, Membership]:
    """A chat the user may write to: NotFound when hidden, NotMember for an unjoined channel."""
    chat, membership = await access_chat(session, user_id=user_id, chat_id=chat_id)
    if membership is None:
        raise errors.NotMember()
    return chat, membership


async def access_manager(
    session: AsyncSession, *, user_id: int, chat_id: int, owner_only: bool = False
) -> tuple[Chat, Membership]:
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    allowed = {"owner"} if owner_only else MANAGERS
    if membership.role not in allowed:
        raise errors.Forbidden(
            "Only the chat's owner can do this" if owner_only else "Only chat admins can do this",
            code="not_allowed",
        )
    return chat, membership


async def member_ids(session: AsyncSession, chat_id: int) -> list[int]:
    rows = await session.execute(select(Membership.user_id).where(Membership.chat_id == chat_id))
    return list(rows.scalars())
