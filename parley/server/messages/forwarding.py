"""Forwarding: a copy of a message (its content and files) sent to other chats, each copy
saying where it came from, optionally after a comment."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.accounts.schemas import SenderPublic
from parley.server.cache import SendChecks
from parley.server.db.models import Attachment, Chat, Membership, Message, User
from parley.server.db.unit import publish_on_commit
from parley.server.messages import terms
from parley.server.messages.mentions import replace_mentions
from parley.server.messages.notices import check_not_notice, next_seq
from parley.server.messages.schemas import ForwardedFrom, MessagePublic
from parley.server.messages.service import access_message, messages_public
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import ChatFrame
from parley.server.storage import Storage, new_key
from parley.server.throttle import Throttle


async def forward_message(
    session: AsyncSession,
    broker: Broker,
    checks: SendChecks,
    throttle: Throttle,
    storage: Storage,
    *,
    user_id: int,
    message_id: int,
    chat_ids: Sequence[int],
    comment: str | None,
    now: datetime,
) -> list[MessagePublic]:
    """One copy per target chat (in the order given, duplicates once), the `comment` just
    before it. All or nothing: the caller must read the source (NotFound) and may post in
    every target (NotFound / NotMember / Blocked), else nothing is sent. The files are
    copied, so the members of a target can download them. Commits, then publishes."""
    await throttle.hit("send", user_id)
    source = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    check_not_notice(source, "forwarded")
    if source.deleted_at is not None:
        raise errors.Conflict("The message was deleted", code="message_deleted")
    targets = list(dict.fromkeys(chat_ids))
    for chat_id in targets:
        await checks.check_send(user_id=user_id, chat_id=chat_id)
    origin = await _origin(session, source)
    files = list(
        (
            await session.execute(
                select(Attachment).where(Attachment.message_id == source.id).order_by(Attachment.id)
            )
        ).scalars()
    )
    copied: list[str] = []
    try:
        # The files first: no write lock (SQLite) or row lock is held while they are copied.
        keys = {
            chat_id: [await _copy(storage, a, copied, now) for a in files] for chat_id in targets
        }
        stored: list[Message] = []
        for chat_id in targets:
            stored += await _forward_to(
                session,
                keys[chat_id],
                user_id=user_id,
                chat_id=chat_id,
                source=source,
                origin=origin,
                files=files,
                comment=comment,
                now=now,
            )
        publics = await messages_public(session, stored)
        events = [ChatFrame.of(p.chat_id, frames.NewMessage(p), sender_id=user_id) for p in publics]
        publish_on_commit(session, broker, *events)
        await session.commit()
    except BaseException:
        await session.rollback()
        for key in copied:
            with contextlib.suppress(Exception):  # an orphan file is harmless
                await storage.delete(key)
        raise
    return [p for p in publics if p.forwarded_from is not None]


async def _origin(session: AsyncSession, source: Message) -> str:
    """`forwarded_from` as JSON: a copy of a copy names the original."""
    if source.forwarded_from:
        return source.forwarded_from
    row = (
        await session.execute(
            select(User.id, User.username, User.display_name, Chat.is_public)
            .select_from(Chat)
            .outerjoin(User, User.id == source.sender_id)
            .where(Chat.id == source.chat_id)
        )
    ).one()
    sender = (
        SenderPublic(id=row.id, username=row.username, display_name=row.display_name)
        if row.id is not None
        else None
    )
    origin = ForwardedFrom(
        message_id=source.id,
        sender=sender,
        created_at=source.created_at,
        chat_id=source.chat_id if row.is_public else None,
    )
    return origin.model_dump_json()


async def _copy(storage: Storage, a: Attachment, copied: list[str], now: datetime) -> str:
    key = new_key("attachments", now)
    copied.append(key)
    await storage.save(key, await storage.open(a.storage_key), max_bytes=a.size + 1)
    return key


async def _forward_to(
    session: AsyncSession,
    keys: list[str],
    *,
    user_id: int,
    chat_id: int,
    source: Message,
    origin: str,
    files: list[Attachment],
    comment: str | None,
    now: datetime,
) -> list[Message]:
    """The comment (when given) and the copy, in `chat_id`; the copy's files copied."""
    chat = await session.get(Chat, chat_id)
    membership = await session.get(Membership, (chat_id, user_id))
    if chat is None or membership is None:
        raise errors.NotFound("No such chat", code="chat_not_found")
    written = []
    if comment:
        note = await _insert(session, chat, user_id=user_id, content=comment, now=now)
        await replace_mentions(session, note, chat_type=chat.type, role=membership.role)
        written.append(note)
    copy = await _insert(session, chat, user_id=user_id, content=source.content, now=now)
    copy.forwarded_from = origin
    for a, key in zip(files, keys, strict=True):
        session.add(
            Attachment(
                chat_id=chat_id,
                uploader_id=user_id,
                message_id=copy.id,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                is_image=a.is_image,
                storage_key=key,
                created_at=now,
            )
        )
    await session.flush()
    copy.search_text = await terms.search_text_of(session, copy)
    membership.last_read_seq = copy.seq  # what I send is read
    chat.last_activity_at = now
    return [*written, copy]


async def _insert(
    session: AsyncSession, chat: Chat, *, user_id: int, content: str, now: datetime
) -> Message:
    message = Message(
        chat_id=chat.id,
        seq=await next_seq(session, chat),
        sender_id=user_id,
        content=content,
        created_at=now,
        search_text=terms.search_text(content, ()),
    )
    session.add(message)
    await session.flush()
    return message
