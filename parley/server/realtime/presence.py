"""Presence announcements: who is told when a user comes online or goes offline."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from parley.server.db.models import Chat, Membership, User, utcnow
from parley.server.deps import AppState
from parley.server.messages.service import frame


async def presence_audience(state: AppState, user_id: int) -> list[int]:
    """Users sharing a direct chat or a group with this user (public channels do not count)."""
    other = aliased(Membership)
    async with state.reads() as session:
        rows = await session.execute(
            select(other.user_id)
            .join(Membership, Membership.chat_id == other.chat_id)
            .join(Chat, Chat.id == Membership.chat_id)
            .where(
                Membership.user_id == user_id,
                other.user_id != user_id,
                Chat.type.in_(("direct", "group")),
            )
            .distinct()
        )
        return list(rows.scalars())


async def announce_presence(state: AppState, user_id: int, online: bool) -> None:
    """Stores last_seen_at, then tells the audience with one event."""
    now = utcnow()
    async with state.sessions() as session:
        await session.execute(update(User).where(User.id == user_id).values(last_seen_at=now))
        await session.commit()
    audience = await presence_audience(state, user_id)
    if not audience:
        return
    status = "online" if online else "offline"
    await state.broker.publish(
        {
            "t": "users",
            "user_ids": audience,
            "frame": frame(
                "presence", user_id=user_id, status=status, last_seen_at=now.isoformat()
            ),
        }
    )
