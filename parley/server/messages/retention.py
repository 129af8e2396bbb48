"""Retention: messages older than their chat's `retention_days` (else PARLEY_RETENTION_DAYS;
0 keeps forever) lose their content, reactions, mentions, search entries and attachments'
files, leaving `deleted` placeholders so `seq` stays gap-free. Run by the worker on the
injected clock; each run does at most `batch` messages per chat.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.db.models import Attachment, Chat, Message
from parley.server.messages.service import erase_messages, messages_public, publish_update
from parley.server.realtime.broker import Broker
from parley.server.storage import Storage


async def enforce_retention(
    session: AsyncSession,
    storage: Storage,
    broker: Broker,
    *,
    default_days: float,
    now: datetime,
    batch: int = 500,
) -> int:
    """Erases what is past retention in every chat; how many messages were erased."""
    query = select(Chat.id, Chat.retention_days).where(Chat.retention_days > 0)
    if default_days > 0:
        query = select(Chat.id, Chat.retention_days).where(
            or_(Chat.retention_days > 0, Chat.retention_days.is_(None))
        )
    chats = (await session.execute(query)).all()
    await session.commit()
    erased = 0
    for chat_id, days in chats:
        cutoff = now - timedelta(days=days if days is not None else default_days)
        erased += await expire_chat(
            session, storage, broker, chat_id, cutoff=cutoff, now=now, batch=batch
        )
    return erased


async def expire_chat(
    session: AsyncSession,
    storage: Storage,
    broker: Broker,
    chat_id: int,
    *,
    cutoff: datetime,
    now: datetime,
    batch: int,
) -> int:
    """Rows first (committed), then the files, then the chat is told."""
    old = select(Message.id).where(Message.chat_id == chat_id, Message.created_at < cutoff)
    keys = list(
        (
            await session.execute(
                delete(Attachment)
                .where(
                    Attachment.id.in_(
                        select(Attachment.id).where(Attachment.message_id.in_(old)).limit(batch)
                    )
                )
                .returning(Attachment.storage_key)
            )
        ).scalars()
    )
    ids = list(
        (
            await session.execute(
                old.where(Message.deleted_at.is_(None)).order_by(Message.id).limit(batch)
            )
        ).scalars()
    )
    if ids:
        await erase_messages(session, ids, now=now)
    await session.commit()
    for key in keys:
        with contextlib.suppress(errors.ParleyError, OSError):  # a stray file is harmless
            await storage.delete(key)
    if ids:
        rows = (await session.execute(select(Message).where(Message.id.in_(ids)))).scalars()
        for public in await messages_public(session, list(rows)):
            await publish_update(broker, public)
        await session.commit()
    return len(ids)
