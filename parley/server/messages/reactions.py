"""Reactions and read markers: who reacted with what, how far each member has read.

Every write commits first and publishes after (the session's UnitOfWork queue).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.chats.access import access_member
from parley.server.db.models import Membership, Message, Reaction, User
from parley.server.db.unit import publish_on_commit
from parley.server.messages.notices import check_not_notice
from parley.server.messages.schemas import MessagePublic
from parley.server.messages.service import (
    access_message,
    commit_and_publish_update,
    message_public,
)
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import UsersFrame

READ_FRAMES_MAX = 100  # read frames reach the other members only in chats this small


async def react(
    session: AsyncSession,
    broker: Broker,
    *,
    user_id: int,
    message_id: int,
    emoji: str,
    add: bool,
    now: datetime,
    max_reactions: int,
) -> MessagePublic:
    """Adds or removes the user's reaction (one per user per emoji); idempotent both ways.
    A message holds at most `max_reactions` distinct emoji (Conflict `too_many_reactions`);
    one already there can always be added."""
    from parley.server.messages.emoji import check_emoji

    emoji = check_emoji(emoji)
    message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    await access_member(session, user_id=user_id, chat_id=message.chat_id)
    check_not_notice(message, "reacted to")
    if message.deleted_at is not None:
        raise errors.Conflict("The message was deleted", code="message_deleted")
    key = and_(
        Reaction.message_id == message_id, Reaction.user_id == user_id, Reaction.emoji == emoji
    )
    exists = (await session.execute(select(Reaction.emoji).where(key))).first() is not None
    if add and not exists:
        await _check_reaction_room(session, message_id=message_id, emoji=emoji, limit=max_reactions)
        try:
            # A savepoint: losing the race must not expire `message` (a full rollback would).
            async with session.begin_nested():
                session.add(Reaction(message_id=message_id, user_id=user_id, emoji=emoji))
        except IntegrityError:  # the same reaction added concurrently: already there
            exists = True
    elif not add and exists:
        await session.execute(delete(Reaction).where(key))
    if add == exists:  # nothing changed: nothing told
        await session.commit()
        return await message_public(session, message)
    return await commit_and_publish_update(session, broker, message)


async def _check_reaction_room(
    session: AsyncSession, *, message_id: int, emoji: str, limit: int
) -> None:
    """Raises Conflict when `emoji` would be one distinct emoji too many on the message.
    The message's row is locked first (PostgreSQL; SQLite's writers hold the write lock):
    two new emoji at once cannot both take the last place."""
    await session.execute(select(Message.id).where(Message.id == message_id).with_for_update())
    present = set(
        (
            await session.execute(
                select(Reaction.emoji).where(Reaction.message_id == message_id).distinct()
            )
        ).scalars()
    )
    if emoji not in present and len(present) >= limit:
        raise errors.Conflict(
            f"A message can have at most {limit} different reactions", code="too_many_reactions"
        )


async def mark_read(
    session: AsyncSession, broker: Broker, *, user_id: int, chat_id: int, seq: int
) -> int:
    """Moves the read marker forward (never back, never past the last seq); tells the chat."""
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    target = min(seq, chat.last_seq)
    if target <= membership.last_read_seq:
        return membership.last_read_seq
    membership.last_read_seq = target
    read = frames.Read(chat_id=chat_id, user_id=user_id, seq=target)
    publish_on_commit(session, broker, await _read_event(session, chat_id, user_id, read))
    await session.commit()
    return target


async def mark_unread(
    session: AsyncSession, broker: Broker, *, user_id: int, chat_id: int, seq: int
) -> int:
    """Moves the read marker back to just before `seq` (never forward: a marker already
    there or earlier stays); the user's sockets get its `read` frame. The marker."""
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    target = max(0, min(seq, chat.last_seq + 1) - 1)
    if target >= membership.last_read_seq:
        return membership.last_read_seq
    membership.last_read_seq = target
    read = frames.Read(chat_id=chat_id, user_id=user_id, seq=target)
    publish_on_commit(session, broker, UsersFrame.of([user_id], read))
    await session.commit()
    return target


async def _read_event(
    session: AsyncSession, chat_id: int, user_id: int, read: frames.Read
) -> UsersFrame:
    """Who hears a read marker move: the reader's own sockets always; the other members
    only in chats of at most READ_FRAMES_MAX members (where read receipts are shown, as
    `read_markers`), and only if both the reader and they share read receipts. In a
    larger chat nobody shows another member's marker, and one frame per member for every
    marker moved was most of a large channel's traffic (docs/capacity.md)."""
    reader = await session.get(User, user_id)
    if reader is not None and reader.share_read_receipts is False:
        return UsersFrame.of([user_id], read)
    rows = await session.execute(
        select(Membership.user_id, User.share_read_receipts)
        .join(User, User.id == Membership.user_id)
        .where(Membership.chat_id == chat_id)
        .limit(READ_FRAMES_MAX + 1)
    )
    members = rows.tuples().all()
    if len(members) > READ_FRAMES_MAX:
        return UsersFrame.of([user_id], read)
    hearing = [uid for uid, shares in members if shares is not False or uid == user_id]
    return UsersFrame.of(hearing, read)
