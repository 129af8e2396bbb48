"""Web Push subscriptions and the rules of what is pushed to whom."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.db.models import Block, Chat, Membership, PushSubscription, ThreadFollow, User
from parley.server.moderation.service import in_force

MAX_SUBSCRIPTIONS = 10


def endpoint_key(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


async def subscribe(
    session: AsyncSession,
    *,
    user_id: int,
    endpoint: str,
    p256dh: str,
    auth: str,
    now: datetime,
) -> tuple[PushSubscription, bool]:
    """(subscription, created). The same endpoint again: the same row, its keys refreshed
    (a browser's endpoint belongs to whoever subscribed it last). 409 past the limit."""
    key = endpoint_key(endpoint)
    found = (
        await session.execute(select(PushSubscription).where(PushSubscription.endpoint_key == key))
    ).scalar_one_or_none()
    if found is not None:
        found.user_id, found.p256dh, found.auth = user_id, p256dh, auth
        await session.commit()
        return found, False
    count = (
        await session.execute(
            select(func.count())
            .select_from(PushSubscription)
            .where(PushSubscription.user_id == user_id)
        )
    ).scalar_one()
    if count >= MAX_SUBSCRIPTIONS:
        raise errors.Conflict(
            f"At most {MAX_SUBSCRIPTIONS} push subscriptions per user",
            code="too_many_subscriptions",
        )
    row = PushSubscription(
        user_id=user_id, endpoint=endpoint, endpoint_key=key, p256dh=p256dh, auth=auth,
        created_at=now,
    )  # fmt: skip
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:  # the same endpoint subscribed concurrently
        await session.rollback()
        return await subscribe(
            session, user_id=user_id, endpoint=endpoint, p256dh=p256dh, auth=auth, now=now
        )
    await session.commit()
    return row, True


async def list_subscriptions(session: AsyncSession, *, user_id: int) -> list[PushSubscription]:
    rows = await session.execute(
        select(PushSubscription)
        .where(PushSubscription.user_id == user_id)
        .order_by(PushSubscription.id)
    )
    return list(rows.scalars())


async def unsubscribe(session: AsyncSession, *, user_id: int, subscription_id: int) -> None:
    gone = await session.execute(
        delete(PushSubscription).where(
            PushSubscription.id == subscription_id, PushSubscription.user_id == user_id
        )
    )
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        raise errors.NotFound("No such subscription", code="subscription_not_found")
    await session.commit()


async def forget(session: AsyncSession, *, subscription_id: int) -> None:
    """The push service said the subscription is gone (404/410)."""
    await session.execute(delete(PushSubscription).where(PushSubscription.id == subscription_id))
    await session.commit()


async def anyone_subscribed(session: AsyncSession) -> bool:
    """Whether anybody has a push subscription (asked at most every few seconds by the
    pusher: where nobody has subscribed, new messages cost no query)."""
    anyone = await session.execute(select(PushSubscription.id).limit(1))
    return anyone.first() is not None


async def audience(
    session: AsyncSession,
    *,
    chat_id: int,
    sender_id: int | None,
    mentioned: Sequence[int],
    now: datetime,
    thread_root_id: int | None = None,
) -> tuple[Chat | None, dict[int, list[PushSubscription]]]:
    """Who should hear of a new message, with their subscriptions: each subscribed member
    by its notify level (`all`: every message, the default in direct chats and groups;
    `mentions`: messages that mention it, the default in channels; `none`: nothing, not even
    mentions), and for a thread reply those who follow the thread (as if mentioned); never
    the sender, nobody in do-not-disturb, never someone who blocks the sender, nobody who
    muted the chat unless mentioned."""
    chat = await session.get(Chat, chat_id)
    if chat is None:
        return None, {}
    named = list(mentioned)
    if thread_root_id is not None:
        named += await _followers(session, thread_root_id)
    wanted = await _listeners(session, chat, sender_id=sender_id, mentioned=named, now=now)
    if sender_id is not None and wanted:
        blocking = set(
            (
                await session.execute(
                    select(Block.blocker_id).where(
                        Block.blocker_id.in_(wanted),
                        Block.blocked_id == sender_id,
                        in_force(Block.expires_at, now),
                    )
                )
            ).scalars()
        )
        wanted = [uid for uid in wanted if uid not in blocking]
    subscriptions: dict[int, list[PushSubscription]] = {}
    if wanted:
        found = await session.execute(
            select(PushSubscription).where(PushSubscription.user_id.in_(wanted))
        )
        for row in found.scalars():
            subscriptions.setdefault(row.user_id, []).append(row)
    return chat, subscriptions


async def _followers(session: AsyncSession, root_id: int) -> list[int]:
    rows = await session.execute(
        select(ThreadFollow.user_id).where(
            ThreadFollow.root_id == root_id, ThreadFollow.following.is_(True)
        )
    )
    return list(rows.scalars())


async def _listeners(
    session: AsyncSession,
    chat: Chat,
    *,
    sender_id: int | None,
    mentioned: Sequence[int],
    now: datetime,
) -> list[int]:
    """The subscribed members the notify, mute and dnd rules let hear of a message."""
    default = "mentions" if chat.type == "channel" else "all"
    wants_all = Membership.notify == "all"
    if default == "all":
        wants_all = or_(wants_all, Membership.notify.is_(None))
    rows = await session.execute(
        select(Membership.user_id, Membership.notify, Membership.muted_until, User.dnd_until)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.chat_id == chat.id,
            Membership.user_id.in_(select(PushSubscription.user_id)),
            or_(wants_all, Membership.user_id.in_(list(mentioned) or [0])),
        )
    )
    wanted = []
    for uid, notify, muted, dnd in rows.tuples():
        level, named = notify or default, uid in mentioned
        if uid == sender_id or level == "none" or (dnd is not None and dnd > now):
            continue
        if (level == "mentions" or (muted is not None and muted > now)) and not named:
            continue
        wanted.append(uid)
    return wanted
