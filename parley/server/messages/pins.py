"""Pins: messages pinned to their chat, most recently pinned first, at most MAX_PINS each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.actor import Actor
from parley.server.cache import SendChecks
from parley.server.chats.access import access_chat, access_member
from parley.server.db.models import Chat, Message
from parley.server.db.unit import after_commit
from parley.server.messages.notices import add_notice, check_not_notice
from parley.server.messages.schemas import MessagePublic
from parley.server.messages.service import (
    access_message,
    message_public,
    messages_public,
    publish_update,
)
from parley.server.moderation.service import blocked_ids
from parley.server.realtime.broker import Broker

MAX_PINS = 50


async def check_can_pin(
    session: AsyncSession, checks: SendChecks, *, user_id: int, chat_id: int
) -> Chat:
    """Anyone who may post, in direct chats and groups; owners and admins in channels.
    Forbidden otherwise (NotFound when the chat is hidden, NotMember for a channel not
    joined)."""
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    if chat.type == "channel" and membership.role not in {"owner", "admin"}:
        raise errors.Forbidden("Only the channel's admins can pin messages")
    try:
        await checks.check_send(user_id=user_id, chat_id=chat_id)
    except (errors.Blocked, errors.UserBanned):
        raise errors.Forbidden("You cannot post in this chat") from None
    return chat


async def _pinned_message(
    session: AsyncSession, *, user_id: int, chat_id: int, message_id: int, now: datetime
) -> Message:
    message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    if message.chat_id != chat_id:
        raise errors.NotFound("No such message", code="message_not_found")
    return message


async def set_pinned(
    session: AsyncSession,
    broker: Broker,
    checks: SendChecks,
    actor: Actor,
    *,
    chat_id: int,
    message_id: int,
    pinned: bool,
) -> MessagePublic:
    """Pins or unpins a message of the chat (one already as asked: nothing happens); the
    message as it is now. Conflict `too_many_pins` past MAX_PINS. Commits, then sends
    `message_updated` (and, outside direct chats, a `pinned` or `unpinned` notice)."""
    user_id, now = actor
    chat = await check_can_pin(session, checks, user_id=user_id, chat_id=chat_id)
    message = await _pinned_message(
        session, user_id=user_id, chat_id=chat_id, message_id=message_id, now=now
    )
    if pinned:
        _check_pinnable(message)
    if (message.pinned_at is not None) == pinned:
        return await message_public(session, message)
    if pinned:
        await _check_room(session, chat_id)
    message.pinned_at, message.pinned_by = (now, user_id) if pinned else (None, None)
    action = "pinned" if pinned else "unpinned"
    await add_notice(
        session, broker, chat, actor_id=user_id, action=action, reply_to=message.id, now=now
    )
    return await _commit_and_tell(session, broker, message)


def _check_pinnable(message: Message) -> None:
    check_not_notice(message, "pinned")
    if message.deleted_at is not None:
        raise errors.Conflict("The message was deleted", code="message_deleted")


async def _check_room(session: AsyncSession, chat_id: int) -> None:
    await _lock(session, chat_id)
    if await _count(session, chat_id) >= MAX_PINS:
        raise errors.Conflict(
            f"A chat can have at most {MAX_PINS} pinned messages", code="too_many_pins"
        )


async def _commit_and_tell(
    session: AsyncSession, broker: Broker, message: Message
) -> MessagePublic:
    await session.flush()
    public = await message_public(session, message)
    after_commit(session, lambda: publish_update(broker, public))
    await session.commit()
    return public


async def _lock(session: AsyncSession, chat_id: int) -> None:
    """Two pins at once cannot both take the last place (PostgreSQL; SQLite's writers hold
    the write lock)."""
    await session.execute(select(Chat.id).where(Chat.id == chat_id).with_for_update())


async def _count(session: AsyncSession, chat_id: int) -> int:
    query = select(func.count()).where(Message.chat_id == chat_id, Message.pinned_at.is_not(None))
    return int(await session.scalar(query) or 0)


async def list_pins(session: AsyncSession, actor: Actor, *, chat_id: int) -> list[MessagePublic]:
    """The chat's pinned messages, most recently pinned first (readers of the chat)."""
    user_id, now = actor
    chat, _ = await access_chat(session, user_id=user_id, chat_id=chat_id)
    query = (
        select(Message)
        .where(Message.chat_id == chat_id, Message.pinned_at.is_not(None))
        .order_by(Message.pinned_at.desc(), Message.id.desc())
        .limit(MAX_PINS)
    )
    hidden = [] if chat.type == "direct" else await blocked_ids(session, user_id, now=now)
    if hidden:  # as in history: not the messages of users the reader blocks
        query = query.where(or_(Message.sender_id.is_(None), Message.sender_id.not_in(hidden)))
    return await messages_public(session, list((await session.execute(query)).scalars()))
