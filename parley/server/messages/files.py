"""A chat's files: the attachments of its messages, newest first (members only)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.chats.access import access_member
from parley.server.db.models import Attachment, Message, User
from parley.server.messages.public import attachment_public, sender_fields
from parley.server.messages.schemas import ChatFilePublic

MAX_FILES = 100


async def chat_files(
    session: AsyncSession, *, user_id: int, chat_id: int, before: int | None, limit: int
) -> list[ChatFilePublic]:
    """The attachments of the chat's messages not deleted, newest first; `before` an
    attachment id (the next page: older than the last one shown)."""
    await access_member(session, user_id=user_id, chat_id=chat_id)
    query = (
        select(Attachment, Message, User.username, User.display_name)
        .join(Message, Message.id == Attachment.message_id)
        .outerjoin(User, User.id == Message.sender_id)
        .where(Attachment.chat_id == chat_id, Message.deleted_at.is_(None))
        .order_by(Attachment.id.desc())
        .limit(min(limit, MAX_FILES))
    )
    if before is not None:
        query = query.where(Attachment.id < before)
    return [
        ChatFilePublic.model_validate(
            {
                "attachment": attachment_public(attachment),
                "message_id": message.id,
                "seq": message.seq,
                "sender": sender_fields(message.sender_id, username, display_name),
                "created_at": message.created_at,
            }
        )
        for attachment, message, username, display_name in await session.execute(query)
    ]
