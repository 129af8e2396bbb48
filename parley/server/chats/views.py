"""Chats as their viewers see them: the public shape, lists of chats and members."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.accounts.service import user_public
from parley.server.chats.access import access_chat
from parley.server.chats.schemas import (
    ChatDetail,
    ChatPublic,
    DraftPublic,
    MemberPublic,
    Notify,
    ReadMarker,
)
from parley.server.db.models import Chat, Membership, Message, User
from parley.server.messages.history import in_main_timeline
from parley.server.messages.mentions import unread_mention_counts
from parley.server.messages.service import messages_public
from parley.server.messages.thread_replies import unread_per_chat, unread_thread_replies
from parley.server.moderation.service import blocked_ids

# "Muted forever" is stored as the last second datetime can hold, so "muted now" is one
# comparison whatever the kind of mute.
FOREVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# Fields of the Chat shape that differ per viewer: left out of frames sent to the whole chat.
PER_VIEWER = frozenset(
    {
        "unread_count",
        "read_seq",
        "my_role",
        "peer",
        "mention_count",
        "muted_until",
        "notify",
        "draft",
    }
)
# Read markers are shown in chats of at most this many members.
READ_MARKERS_MAX_MEMBERS = 100
Online = Callable[[int], bool]
MuteShown = datetime | Literal["forever"] | None
ChatIds = list[int] | Select[int]


def offline(_user_id: int) -> bool:
    """The default answer to "is this user online?" where presence is not asked."""
    return False


async def chats_public(
    session: AsyncSession,
    rows: Sequence[tuple[Chat, Membership | None]],
    *,
    viewer_id: int,
    now: datetime,
    online: Online = offline,
    all_of_viewer: bool = False,
) -> list[ChatPublic]:
    """Chats as one viewer sees them, with batched counts, last messages and peers.

    `all_of_viewer`: `rows` are all the viewer's chats (up to PARLEY_MAX_CHATS_PER_USER),
    so the batched queries select them by a subquery, never a long IN (...) list.
    """
    if not rows:
        return []
    ids: list[int] | Select[int] = (
        select(Membership.chat_id).where(Membership.user_id == viewer_id)
        if all_of_viewer
        else [chat.id for chat, _ in rows]
    )
    count_rows = await session.execute(
        select(Membership.chat_id, func.count())
        .where(Membership.chat_id.in_(ids))
        .group_by(Membership.chat_id)
    )
    counts: dict[int, int] = dict(count_rows.tuples().all())
    # Outside direct chats the viewer does not see the messages of users it blocks: they
    # are neither a chat's last message nor unread.
    hidden = await blocked_ids(session, viewer_id, now=now)
    has_messages = any(c.last_seq for c, _ in rows)
    last = await _last_messages(session, ids, hidden) if has_messages else {}
    unseen = await _hidden_unread(session, viewer_id, ids, hidden) if has_messages else {}
    # threads: replies not also in the chat are not the chat's unread either
    in_threads = (
        await unread_thread_replies(session, viewer_id=viewer_id, chat_ids=ids)
        if has_messages
        else {}
    )
    notices = await _unread_notices(session, viewer_id, ids) if has_messages else {}
    has_direct = any(c.type == "direct" for c, _ in rows)
    peers = await _peers(session, ids, viewer_id) if has_direct else {}
    mentions = await _mention_counts(session, rows, viewer_id, ids, hidden)
    result = []
    for chat, membership in rows:
        peer = peers.get(chat.id)
        read = membership.last_read_seq if membership else chat.last_seq
        result.append(
            ChatPublic(
                id=chat.id,
                type=chat.type,
                title=peer.display_name if peer and chat.type == "direct" else chat.title,
                description=chat.description,
                is_public=chat.is_public,
                created_by=chat.created_by,
                created_at=chat.created_at,
                member_count=counts.get(chat.id, 0),
                last_seq=chat.last_seq,
                unread_count=max(
                    0,
                    chat.last_seq
                    - read
                    - unseen.get(chat.id, 0)
                    - in_threads.get(chat.id, 0)
                    - notices.get(chat.id, 0),
                ),
                read_seq=read,
                last_message=last.get(chat.id),
                my_role=membership.role if membership else None,
                peer=user_public(peer, online=online(peer.id)) if peer else None,
                mention_count=mentions.get(chat.id, 0),
                muted_until=muted_public(membership.muted_until if membership else None, now),
                retention_days=chat.retention_days,
                notify=notify_of(chat, membership),
                draft=draft_public(membership),
            )
        )
    return result


def notify_of(chat: Chat, membership: Membership | None) -> Notify:
    """The member's notification level: its own choice, else the chat type's default
    (`mentions` in channels, `all` elsewhere)."""
    chosen = membership.notify if membership else None
    if chosen in ("all", "mentions", "none"):
        return chosen  # type: ignore[return-value]
    return "mentions" if chat.type == "channel" else "all"


def draft_public(membership: Membership | None) -> DraftPublic | None:
    if membership is None or not membership.draft or membership.draft_updated_at is None:
        return None
    return DraftPublic(content=membership.draft, updated_at=membership.draft_updated_at)


async def chat_detail(
    session: AsyncSession,
    chat: Chat,
    membership: Membership | None,
    *,
    viewer: User,
    now: datetime,
    online: Online = offline,
) -> ChatDetail:
    """The chat with the read markers the viewer may see."""
    public = await chat_public(
        session, chat, membership, viewer_id=viewer.id, now=now, online=online
    )
    markers = (
        await read_markers(session, chat, viewer=viewer, members=public.member_count)
        if membership is not None  # a reader of a public channel it has not joined: none
        else []
    )
    return ChatDetail(**dict(public), read_markers=markers)


async def read_markers(
    session: AsyncSession, chat: Chat, *, viewer: User, members: int
) -> list[ReadMarker]:
    """The other members' read markers (past 0), of those who share read receipts; none in
    chats above READ_MARKERS_MAX_MEMBERS members, none for a viewer who does not share."""
    if members > READ_MARKERS_MAX_MEMBERS or viewer.share_read_receipts is False:
        return []
    rows = await session.execute(
        select(Membership.user_id, Membership.last_read_seq)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.chat_id == chat.id,
            Membership.user_id != viewer.id,
            Membership.last_read_seq > 0,
            User.share_read_receipts.is_not(False),
        )
        .order_by(Membership.user_id)
    )
    return [ReadMarker(user_id=uid, seq=seq) for uid, seq in rows.tuples()]


async def chat_public(
    session: AsyncSession,
    chat: Chat,
    membership: Membership | None,
    *,
    viewer_id: int,
    now: datetime,
    online: Online = offline,
) -> ChatPublic:
    rows = [(chat, membership)]
    return (await chats_public(session, rows, viewer_id=viewer_id, now=now, online=online))[0]


def muted_public(stored: datetime | None, now: datetime) -> MuteShown:
    """As the API shows a mute: null once it has ended, "forever" for the far-future mark."""
    if stored is None or stored <= now:
        return None
    return "forever" if stored >= FOREVER else stored


async def _mention_counts(
    session: AsyncSession,
    rows: Sequence[tuple[Chat, Membership | None]],
    viewer_id: int,
    ids: ChatIds,
    hidden: list[int],
) -> dict[int, int]:
    # `ids` as a subquery is all the viewer's chats: all of them memberships already.
    mine = [c.id for c, m in rows if m is not None] if isinstance(ids, list) else ids
    if isinstance(mine, list) and not mine:
        return {}
    return await unread_mention_counts(
        session, user_id=viewer_id, chat_ids=mine, hidden=sorted(hidden)
    )


async def _last_messages(
    session: AsyncSession, chat_ids: ChatIds, hidden: list[int]
) -> dict[int, object]:
    """Each chat's newest message, passing over the messages of `hidden` senders outside
    direct chats (each such chat then looks back for its newest visible one)."""
    latest = and_(Chat.id == Message.chat_id, Chat.last_seq == Message.seq, Chat.id.in_(chat_ids))
    rows = list((await session.execute(select(Message, Chat.type).join(Chat, latest))).all())
    shown = [m for m, kind in rows if _shown_last(m, kind, hidden)]
    earlier = []
    for message, _kind in [(m, k) for m, k in rows if not _shown_last(m, k, hidden)]:
        query = select(Message).where(Message.chat_id == message.chat_id, Message.kind != "notice")
        if hidden:
            query = query.where(or_(Message.sender_id.is_(None), Message.sender_id.not_in(hidden)))
        visible = await session.scalar(query.order_by(Message.seq.desc()).limit(1))
        if visible is not None:
            earlier.append(visible)
    # The subquery may name a hidden last message too: its reactions are fetched and unused.
    message_ids = select(Message.id).join(Chat, latest)
    public = await messages_public(session, shown, ids_from=message_ids)
    public += await messages_public(session, earlier)
    return {m.chat_id: m for m in public}


def _shown_last(message: Message, chat_type: str, hidden: list[int]) -> bool:
    """A notice is never a chat's last message, nor one of a hidden sender."""
    if message.kind == "notice":
        return False
    return chat_type == "direct" or message.sender_id not in hidden


async def _unread_notices(
    session: AsyncSession, viewer_id: int, chat_ids: ChatIds
) -> dict[int, int]:
    """Per chat, the notices past the viewer's read marker: never unread."""
    query = unread_per_chat(viewer_id, chat_ids).where(Message.kind == "notice")
    return dict((await session.execute(query)).tuples().all())


async def _hidden_unread(
    session: AsyncSession, viewer_id: int, chat_ids: ChatIds, hidden: list[int]
) -> dict[int, int]:
    """Per group or channel, the messages past the viewer's read marker from `hidden`
    senders: taken off its unread count."""
    if not hidden:
        return {}
    query = (
        unread_per_chat(viewer_id, chat_ids)
        .join(Chat, Chat.id == Message.chat_id)
        .where(
            Chat.type != "direct",
            Message.sender_id.in_(hidden),
            Message.kind != "notice",  # counted apart (`_unread_notices`)
            in_main_timeline(),  # the others are counted off with the threads' replies
        )
    )
    return dict((await session.execute(query)).tuples().all())


async def _peers(session: AsyncSession, chat_ids: ChatIds, viewer_id: int) -> dict[int, User]:
    rows = await session.execute(
        select(Membership.chat_id, User)
        .join(User, User.id == Membership.user_id)
        .join(Chat, Chat.id == Membership.chat_id)
        .where(
            Membership.chat_id.in_(chat_ids),
            Chat.type == "direct",
            Membership.user_id != viewer_id,
        )
    )
    return dict(rows.tuples().all())


# --- reading -------------------------------------------------------------------------------


async def list_my_chats(session: AsyncSession, *, user_id: int) -> list[tuple[Chat, Membership]]:
    rows = await session.execute(
        select(Chat, Membership)
        .join(Membership, Membership.chat_id == Chat.id)
        .where(Membership.user_id == user_id)
        .order_by(Chat.last_activity_at.desc(), Chat.id.desc())
    )
    return [(c, m) for c, m in rows.all()]


async def list_public_channels(
    session: AsyncSession, *, user_id: int, q: str, limit: int, offset: int
) -> list[tuple[Chat, Membership | None]]:
    query = (
        select(Chat, Membership)
        .outerjoin(Membership, (Membership.chat_id == Chat.id) & (Membership.user_id == user_id))
        .where(Chat.is_public.is_(True))
        .order_by(Chat.last_activity_at.desc(), Chat.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if q:
        query = query.where(func.lower(Chat.title).contains(q.lower(), autoescape=True))
    return [(c, m) for c, m in (await session.execute(query)).all()]


async def list_members(
    session: AsyncSession, *, user_id: int, chat_id: int, online: Online = offline
) -> list[MemberPublic]:
    await access_chat(session, user_id=user_id, chat_id=chat_id)
    rows = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.chat_id == chat_id)
        .order_by(Membership.joined_at, User.id)
    )
    return [
        MemberPublic(user=user_public(u, online=online(u.id)), role=m.role, joined_at=m.joined_at)
        for m, u in rows.all()
    ]


# --- writing -------------------------------------------------------------------------------
