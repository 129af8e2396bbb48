"""Notices: a change to a group or channel (a member joined, the title changed, a message
was pinned…) written into its timeline as a message of kind "notice".

A notice is written in the transaction of the change it tells, takes the chat's next seq
like any message, and is published after the commit as a `message` frame. It has no
content, is never unread, never a mention, never the chat's last message, and cannot be
edited, reacted to, replied to or forwarded. Direct chats have none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from parley import errors
from parley.server.db.models import Chat, Message, User
from parley.server.db.unit import Publisher, publish_on_commit
from parley.server.messages.public import as_public, row_fields, sender_fields
from parley.server.realtime import frames
from parley.server.realtime.events import ChatFrame

ACTIONS = frozenset(
    {
        "joined",
        "left",
        "added",
        "removed",
        "renamed",
        "description_changed",
        "role_changed",
        "owner_changed",
        "pinned",
        "unpinned",
    }
)
NOTICE = "notice"


async def next_seq(session: AsyncSession, chat: Chat) -> int:
    """Takes the chat's next seq in this transaction: the row stays locked (PostgreSQL; on
    SQLite the write lock) until the commit, so seqs stay gapless beside the writer's."""
    seq = await session.scalar(
        update(Chat.__table__)  # type: ignore[arg-type]
        .where(Chat.__table__.c.id == chat.id)
        .values(last_seq=Chat.__table__.c.last_seq + 1)
        .returning(Chat.__table__.c.last_seq)
    )
    if seq is None:
        raise errors.NotFound("No such chat", code="chat_not_found")
    set_committed_value(chat, "last_seq", int(seq))
    return int(seq)


async def add_notice(
    session: AsyncSession,
    broker: Publisher,
    chat: Chat,
    *,
    actor_id: int,
    action: str,
    now: datetime,
    user_ids: Sequence[int] = (),
    title: str | None = None,
    reply_to: int | None = None,
    skip_user: int | None = None,
) -> Message | None:
    """Writes the notice of `action` (not committed) and publishes it once the session
    commits, to the chat's members but `skip_user` (a removed member gets `chat_removed`
    instead). None in a direct chat."""
    assert action in ACTIONS, action
    if chat.type == "direct":
        return None
    body = {"action": action, "actor_id": actor_id, "user_ids": list(user_ids), "title": title}
    message = Message(
        chat_id=chat.id,
        seq=await next_seq(session, chat),
        sender_id=actor_id,
        content="",
        kind=NOTICE,
        notice=json.dumps(body),
        reply_to_id=reply_to,
        created_at=now,
        search_text="",
    )
    session.add(message)
    await session.flush()
    actor = (
        await session.execute(
            select(User.id, User.username, User.display_name).where(User.id == actor_id)
        )
    ).first()
    sender = sender_fields(*actor) if actor is not None else None
    public = as_public(row_fields(message, sender=sender))
    new = frames.NewMessage(public)
    event = ChatFrame.of(chat.id, new, sender_id=actor_id, skip_user=skip_user)
    publish_on_commit(session, broker, event)
    return message


def check_not_notice(message: Message, what: str) -> None:
    """A notice cannot be edited, reacted to, replied to, pinned or forwarded (422)."""
    if message.kind == NOTICE:
        raise errors.ValidationFailed(f"A notice cannot be {what}")
