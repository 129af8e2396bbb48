"""Thread replies as stored: a reply's columns, its root's summary, who follows the thread,
and the replies kept out of the chats' unread counts.

Only models and SQL here (the writer imports it: no service, no cycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Membership, Message, ThreadFollow
from parley.server.messages.public import participant_ids

MAX_PARTICIPANTS = 5


async def record_reply(
    session: AsyncSession,
    *,
    reply_id: int,
    seq: int,
    sender_id: int,
    root_id: int,
    also_in_chat: bool,
    mentions: Sequence[int],
    now: datetime,
) -> Message:
    """Marks the stored message `reply_id` as a reply in `root_id`'s thread and updates the
    root's summary (its row locked on PostgreSQL: concurrent replies count right) and the
    follows: the replier (read up to its reply), the root's author unless it chose not to,
    and the mentioned. No commit. Returns the root."""
    await session.execute(
        update(Message)
        .where(Message.id == reply_id)
        .values(thread_root_id=root_id, also_in_chat=also_in_chat)
        .execution_options(synchronize_session=False)
    )
    root = (
        await session.execute(select(Message).where(Message.id == root_id).with_for_update())
    ).scalar_one()
    others = [p for p in participant_ids(root.thread_participants) if p != sender_id]
    root.reply_count += 1
    root.last_reply_at = now
    root.thread_participants = ",".join(str(p) for p in [sender_id, *others][:MAX_PARTICIPANTS])
    await _follow_on_reply(session, root, sender_id=sender_id, seq=seq, mentions=mentions)
    return root


async def _follow_on_reply(
    session: AsyncSession, root: Message, *, sender_id: int, seq: int, mentions: Sequence[int]
) -> None:
    users = {sender_id, *mentions}
    if root.sender_id is not None:
        users.add(root.sender_id)
    rows = await session.execute(
        select(ThreadFollow).where(ThreadFollow.root_id == root.id, ThreadFollow.user_id.in_(users))
    )
    known = {f.user_id: f for f in rows.scalars()}
    for user_id in users:
        follow = known.get(user_id)
        if follow is None:
            follow = ThreadFollow(
                root_id=root.id, user_id=user_id, chat_id=root.chat_id, last_read_seq=0
            )
            session.add(follow)
        if user_id == sender_id or user_id in mentions:
            follow.following = True  # replying or being named: following again
        elif follow.following is None:  # the root's author, who made no choice
            follow.following = True
        if user_id == sender_id:
            follow.last_read_seq = max(follow.last_read_seq or 0, seq)


async def set_following(
    session: AsyncSession, *, root: Message, user_id: int, following: bool
) -> None:
    """Follows or unfollows (an explicit choice, kept). No commit."""
    follow = await session.get(ThreadFollow, (root.id, user_id))
    if follow is None:
        session.add(
            ThreadFollow(
                root_id=root.id,
                user_id=user_id,
                chat_id=root.chat_id,
                following=following,
                last_read_seq=0,
            )
        )
    else:
        follow.following = following


async def move_thread_read(session: AsyncSession, *, root: Message, user_id: int, seq: int) -> bool:
    """Moves the user's read marker in the thread forward (never back). No commit.
    Returns whether it moved."""
    follow = await session.get(ThreadFollow, (root.id, user_id))
    if follow is None:
        follow = ThreadFollow(root_id=root.id, user_id=user_id, chat_id=root.chat_id)
        follow.following, follow.last_read_seq = None, 0
        session.add(follow)
    if seq <= (follow.last_read_seq or 0):
        return False
    follow.last_read_seq = seq
    return True


async def unread_thread_replies(
    session: AsyncSession,
    *,
    viewer_id: int,
    chat_ids: Sequence[int] | Select[int],
) -> dict[int, int]:
    """Per chat, the thread-only replies past the viewer's chat read marker: a chat's
    `unread_count` counts its main timeline only, so these are taken off it."""
    query = unread_per_chat(viewer_id, chat_ids).where(
        Message.thread_root_id.is_not(None), Message.also_in_chat.is_(False)
    )
    return dict((await session.execute(query)).tuples().all())


def unread_per_chat(viewer_id: int, chat_ids: Sequence[int] | Select[int]) -> Select[int, int]:
    """Per chat, the count of its messages past the viewer's read marker: the caller adds
    which messages count."""
    return (
        select(Message.chat_id, func.count())
        .join(
            Membership,
            (Membership.chat_id == Message.chat_id) & (Membership.user_id == viewer_id),
        )
        .where(Message.chat_id.in_(chat_ids), Message.seq > Membership.last_read_seq)
        .group_by(Message.chat_id)
    )
