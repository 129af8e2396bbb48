"""What a user's sockets may hear, as the database says now: their chats, the users they
block, their live login sessions and their ban.

A socket's handshake reads it; it is read again when events that change it passed before
the socket joined the hub (ws.py), and for every socket a process holds after a `Resync`
(hub.py), so that nothing the broker failed to announce lets a removed, banned or blocked
user keep listening.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Ban, Block, Membership
from parley.server.db.models import Session as LoginSession
from parley.server.moderation.service import in_force

CHUNK = 500  # users per query: the IN lists stay short on both databases


@dataclass(frozen=True, slots=True)
class SocketView:
    chats: frozenset[int] = frozenset()
    blocked: frozenset[int] = frozenset()  # the blocks in force now
    sessions: frozenset[int] = frozenset()  # the live login sessions
    banned: bool = False


NOTHING = SocketView()  # a user the database no longer has: every socket of it closes


async def read_views(
    session: AsyncSession, user_ids: Collection[int], *, now: datetime
) -> dict[int, SocketView]:
    """Each user's view (NOTHING for a user without rows), a few queries per CHUNK users."""
    ids = sorted(user_ids)
    views: dict[int, SocketView] = {}
    for start in range(0, len(ids), CHUNK):
        views.update(await _read_chunk(session, ids[start : start + CHUNK], now))
    return views


async def _read_chunk(
    session: AsyncSession, ids: list[int], now: datetime
) -> dict[int, SocketView]:
    chats: dict[int, set[int]] = {user_id: set() for user_id in ids}
    blocked: dict[int, set[int]] = {user_id: set() for user_id in ids}
    sessions: dict[int, set[int]] = {user_id: set() for user_id in ids}
    for user_id, chat_id in await session.execute(
        select(Membership.user_id, Membership.chat_id).where(Membership.user_id.in_(ids))
    ):
        chats[user_id].add(chat_id)
    for user_id, target in await session.execute(
        select(Block.blocker_id, Block.blocked_id).where(
            Block.blocker_id.in_(ids), in_force(Block.expires_at, now)
        )
    ):
        blocked[user_id].add(target)
    for user_id, session_id in await session.execute(
        select(LoginSession.user_id, LoginSession.id).where(
            LoginSession.user_id.in_(ids),
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
    ):
        sessions[user_id].add(session_id)
    banned = set(
        (
            await session.execute(
                select(Ban.user_id).where(Ban.user_id.in_(ids), in_force(Ban.expires_at, now))
            )
        ).scalars()
    )
    return {
        user_id: SocketView(
            frozenset(chats[user_id]),
            frozenset(blocked[user_id]),
            frozenset(sessions[user_id]),
            user_id in banned,
        )
        for user_id in ids
    }
