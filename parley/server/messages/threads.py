"""Threads as their readers see them: a thread's page, following, the threads I follow
with their unread counts, and my read marker in a thread.

Storing a reply (its root's summary, the follows it makes) is `thread_replies.py`, run by
the writer; the send itself is the one send path (`service.submit_send`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Chat, Membership, Message, ThreadFollow
from parley.server.db.unit import publish_on_commit
from parley.server.messages import thread_replies
from parley.server.messages.history import seq_page
from parley.server.messages.schemas import FollowedThread, ThreadPage
from parley.server.messages.service import access_message, hidden_senders, messages_public
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import UsersFrame


async def access_root(
    session: AsyncSession, *, user_id: int, message_id: int, now: datetime
) -> Message:
    """The root of the thread `message_id` is in (itself when it is no reply), for a user
    who may read it; NotFound otherwise."""
    message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    if message.thread_root_id is None:
        return message
    return await access_message(
        session, user_id=user_id, message_id=message.thread_root_id, now=now
    )


async def list_thread(
    session: AsyncSession,
    *,
    user_id: int,
    root_id: int,
    limit: int,
    after: int | None = None,
    before: int | None = None,
    now: datetime,
) -> ThreadPage:
    """The root and a page of its replies, ascending seq: the newest `limit`, or those just
    after/before a seq. Outside direct chats, none from users the reader blocks."""
    root = await access_root(session, user_id=user_id, message_id=root_id, now=now)
    query = await _replies(session, root, user_id, now)
    page = await seq_page(session, query, limit=limit, after=after, before=before)
    replies = [reply for (reply,) in page]
    shown = await messages_public(session, [root, *replies])
    return ThreadPage(root=shown[0], replies=shown[1:])


async def _replies(
    session: AsyncSession, root: Message, user_id: int, now: datetime
) -> Select[Message]:
    query = select(Message).where(Message.thread_root_id == root.id)
    chat = await session.get(Chat, root.chat_id)
    hidden = await hidden_senders(session, chat, user_id, now) if chat is not None else ()
    if hidden:
        query = query.where(or_(Message.sender_id.is_(None), Message.sender_id.not_in(hidden)))
    return query


async def follow_thread(
    session: AsyncSession, *, user_id: int, root_id: int, following: bool, now: datetime
) -> None:
    """Follows or unfollows a thread I may read (idempotent); commits."""
    root = await access_root(session, user_id=user_id, message_id=root_id, now=now)
    await thread_replies.set_following(session, root=root, user_id=user_id, following=following)
    await session.commit()


async def list_threads(
    session: AsyncSession,
    *,
    user_id: int,
    limit: int,
    before: datetime | None = None,
) -> list[FollowedThread]:
    """The threads I follow that have replies, in chats I am still a member of, the most
    recent reply first; `before`: only those whose last reply is older (paging)."""
    query = (
        select(Message)
        .join(ThreadFollow, ThreadFollow.root_id == Message.id)
        .join(
            Membership,
            (Membership.chat_id == Message.chat_id) & (Membership.user_id == user_id),
        )
        .where(
            ThreadFollow.user_id == user_id,
            ThreadFollow.following.is_(True),
            Message.reply_count > 0,
        )
        .order_by(Message.last_reply_at.desc(), Message.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Message.last_reply_at < before)
    roots = list((await session.execute(query)).scalars())
    unread = await _unread_in_threads(session, user_id, [r.id for r in roots])
    shown = await messages_public(session, roots)
    return [
        FollowedThread(root=p, unread_count=unread.get(r.id, 0), last_reply_at=r.last_reply_at)
        for r, p in zip(roots, shown, strict=True)
    ]


async def _unread_in_threads(
    session: AsyncSession, user_id: int, root_ids: Sequence[int]
) -> dict[int, int]:
    """Per thread, the replies of others past my read marker in it (deleted ones aside)."""
    if not root_ids:
        return {}
    query = (
        select(Message.thread_root_id, func.count())
        .join(
            ThreadFollow,
            (ThreadFollow.root_id == Message.thread_root_id) & (ThreadFollow.user_id == user_id),
        )
        .where(
            Message.thread_root_id.in_(root_ids),
            Message.seq > ThreadFollow.last_read_seq,
            Message.deleted_at.is_(None),
            or_(Message.sender_id.is_(None), Message.sender_id != user_id),
        )
        .group_by(Message.thread_root_id)
    )
    return {root: count for root, count in (await session.execute(query)).tuples() if root}


async def mark_thread_read(
    session: AsyncSession, broker: Broker, *, user_id: int, root_id: int, seq: int, now: datetime
) -> int:
    """Moves my read marker in the thread forward (never back, never past its last reply);
    commits, then tells my sockets (`thread_read`). Returns the marker."""
    root = await access_root(session, user_id=user_id, message_id=root_id, now=now)
    last = await session.scalar(
        select(func.max(Message.seq)).where(Message.thread_root_id == root.id)
    )
    target = min(seq, last or root.seq)
    if await thread_replies.move_thread_read(session, root=root, user_id=user_id, seq=target):
        read = frames.ThreadRead(root_id=root.id, seq=target)
        publish_on_commit(session, broker, UsersFrame.of([user_id], read))
    await session.commit()
    return target
