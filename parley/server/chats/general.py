"""The public channel `general` that every user joins on registration."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Chat, Membership

GENERAL = "general"


async def ensure_general(session: AsyncSession) -> Chat:
    """The public channel every user joins; created on first start (safe under races)."""
    chat = (await session.execute(select(Chat).where(Chat.slug == GENERAL))).scalar_one_or_none()
    if chat is not None:
        return chat
    session.add(
        Chat(
            type="channel",
            title="general",
            slug=GENERAL,
            is_public=True,
            description="Everyone's channel",
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
    return (await session.execute(select(Chat).where(Chat.slug == GENERAL))).scalar_one()


async def general_id(session: AsyncSession) -> int:
    return (await ensure_general(session)).id


async def join_general(session: AsyncSession, user_id: int) -> None:
    """Adds the membership to the caller's transaction (no commit)."""
    chat = await ensure_general(session)
    session.add(Membership(chat_id=chat.id, user_id=user_id, role="member"))
