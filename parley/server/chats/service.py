"""Chats: direct chats (one per pair), groups, public channels, members and roles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.accounts.service import access_user, user_public
from parley.server.actor import Actor
from parley.server.audit import audit
from parley.server.chats import views
from parley.server.chats.access import access_chat, access_manager, access_member, member_ids
from parley.server.chats.general import GENERAL
from parley.server.chats.schemas import MemberPublic
from parley.server.db.models import Chat, Membership, User
from parley.server.db.unit import after_commit, publish_on_commit
from parley.server.messages.notices import add_notice
from parley.server.moderation.service import check_can_add, is_blocked_either
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import (
    ChatFrame,
    ChatRemoved,
    MembershipChanged,
    RolesChanged,
    UsersFrame,
)

Online = views.Online


async def create_direct(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    peer_id: int,
    max_chats: int,
    online: Online = views.offline,
) -> tuple[Chat, Membership, bool]:
    """The one direct chat of a pair: created, or the existing one (False).

    TooManyChats when either side is already in `max_chats` chats."""
    user_id, now = actor
    if peer_id == user_id:
        raise errors.ValidationFailed("A direct chat needs another user")
    await access_user(session, peer_id)
    key = f"{min(user_id, peer_id)}:{max(user_id, peer_id)}"
    existing = (
        await session.execute(select(Chat).where(Chat.direct_key == key))
    ).scalar_one_or_none()
    if existing is not None:
        _, membership = await access_member(session, user_id=user_id, chat_id=existing.id)
        return existing, membership, False
    if await is_blocked_either(session, user_id, peer_id, now=now):
        raise errors.Blocked()
    await check_room(session, [user_id, peer_id], max_chats=max_chats)
    chat = Chat(type="direct", direct_key=key, created_by=user_id, is_public=False)
    try:
        # A savepoint: losing the race must not expire what the caller loaded (its user).
        async with session.begin_nested():
            session.add(chat)
    except IntegrityError:  # the pair opened it concurrently
        return await create_direct(
            session, broker, actor, peer_id=peer_id, max_chats=max_chats, online=online
        )
    mine = Membership(chat_id=chat.id, user_id=user_id, role="member")
    session.add_all([mine, Membership(chat_id=chat.id, user_id=peer_id, role="member")])
    joined = [user_id, peer_id]
    after_commit(
        session, lambda: _announce_joined(session, broker, chat, joined, now=now, online=online)
    )
    await session.commit()
    return chat, mine, True


async def create_group(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    type: str,
    title: str,
    description: str,
    member_ids: Sequence[int],
    max_chats: int,
) -> tuple[Chat, Membership]:
    """A group (private) or channel (public); the creator is its owner.

    Members who block the creator cannot be added (Blocked); nobody past `max_chats`."""
    user_id, now = actor
    others = await _existing_users(session, set(member_ids) - {user_id})
    await check_can_add(session, user_id=user_id, target_ids=others, now=now)
    await check_room(session, [user_id, *others], max_chats=max_chats)
    chat = Chat(
        type=type,
        title=title,
        description=description,
        is_public=type == "channel",
        created_by=user_id,
    )
    session.add(chat)
    await session.flush()
    owner = Membership(chat_id=chat.id, user_id=user_id, role="owner")
    session.add(owner)
    session.add_all(Membership(chat_id=chat.id, user_id=uid, role="member") for uid in others)
    joined = [user_id, *others]
    after_commit(session, lambda: _announce_joined(session, broker, chat, joined, now=now))
    await session.commit()
    return chat, owner


async def check_room(session: AsyncSession, user_ids: Sequence[int], *, max_chats: int) -> None:
    """TooManyChats (409) when one of the users is already in `max_chats` chats."""
    if not user_ids:
        return
    full = (
        await session.execute(
            select(Membership.user_id)
            .where(Membership.user_id.in_(set(user_ids)))
            .group_by(Membership.user_id)
            .having(func.count() >= max_chats)
            .limit(1)
        )
    ).scalar_one_or_none()
    if full is not None:
        raise errors.Conflict(
            f"User {full} is already in {max_chats} chats, the most allowed", code="too_many_chats"
        )


async def _existing_users(session: AsyncSession, ids: set[int]) -> list[int]:
    if not ids:
        return []
    found = set((await session.execute(select(User.id).where(User.id.in_(ids)))).scalars())
    if missing := ids - found:
        raise errors.NotFound(f"No such user: {sorted(missing)[0]}", code="user_not_found")
    return sorted(found)


async def update_chat(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    chat_id: int,
    title: str | None,
    description: str | None,
    retention: tuple[float | None] | None = None,
) -> tuple[Chat, Membership]:
    """Owner/admin. `retention`: (days,) to set the chat's retention (audited), None to keep."""
    user_id, now = actor
    chat, membership = await access_manager(session, user_id=user_id, chat_id=chat_id)
    if chat.type == "direct" and (title is not None or description is not None):
        raise errors.ValidationFailed("A direct chat has no title", code="direct_chat")
    if title is not None and title != chat.title:
        chat.title = title
        await add_notice(
            session, broker, chat, actor_id=user_id, action="renamed", title=title, now=now
        )
    if description is not None and description != chat.description:
        chat.description = description
        await add_notice(
            session, broker, chat, actor_id=user_id, action="description_changed", now=now
        )
    if retention is not None and retention[0] != chat.retention_days:
        details = {"from": chat.retention_days, "to": retention[0]}
        chat.retention_days = retention[0]
        await audit(session, user_id, "chat.retention", "chat", chat_id, details, at=now)
    after_commit(session, lambda: publish_chat_updated(session, broker, chat, now=now))
    await session.commit()
    return chat, membership


async def delete_chat(session: AsyncSession, broker: Broker, *, user_id: int, chat_id: int) -> None:
    """Owner only (either member for a direct chat); tells every member it is gone."""
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    if chat.type != "direct" and membership.role != "owner":
        raise errors.Forbidden("Only the chat's owner can delete it", code="not_allowed")
    if chat.slug == GENERAL:
        raise errors.Forbidden("The general channel cannot be deleted", code="not_allowed")
    members = await member_ids(session, chat_id)
    await session.execute(delete(Chat).where(Chat.id == chat_id))
    gone = UsersFrame.of(members, frames.ChatRemoved(chat_id))
    publish_on_commit(session, broker, gone, ChatRemoved(chat_id))
    await session.commit()


async def add_members(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    chat_id: int,
    user_ids: Sequence[int],
    max_chats: int,
) -> None:
    """Managers only. Nobody who blocks the adder (Blocked), nobody past `max_chats`."""
    user_id, now = actor
    chat, _ = await access_manager(session, user_id=user_id, chat_id=chat_id)
    if chat.type == "direct":
        raise errors.ValidationFailed("A direct chat has exactly two members", code="direct_chat")
    present = set(await member_ids(session, chat_id))
    new = await _existing_users(session, set(user_ids) - present)
    await check_can_add(session, user_id=user_id, target_ids=new, now=now)
    await check_room(session, new, max_chats=max_chats)
    session.add_all(Membership(chat_id=chat_id, user_id=uid, role="member") for uid in new)
    if new:
        after_commit(session, lambda: _announce_joined(session, broker, chat, new, now=now))
        await add_notice(
            session, broker, chat, actor_id=user_id, action="added", user_ids=new, now=now
        )
    await session.commit()


async def join_chat(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    chat_id: int,
    max_chats: int,
    invited: bool = False,
) -> tuple[Chat, Membership]:
    """Public channels only, or any group or channel when `invited` (an invite was checked);
    joining twice is harmless; TooManyChats past `max_chats`."""
    user_id, now = actor
    if invited:
        chat = await session.get(Chat, chat_id)
        if chat is None or chat.type == "direct":
            raise errors.NotFound("No such chat", code="chat_not_found")
        membership = await session.get(Membership, (chat_id, user_id))
    else:
        chat, membership = await access_chat(session, user_id=user_id, chat_id=chat_id)
    if membership is not None:
        return chat, membership
    if not chat.is_public and not invited:
        raise errors.NotFound("No such chat", code="chat_not_found")
    await check_room(session, [user_id], max_chats=max_chats)
    membership = Membership(chat_id=chat_id, user_id=user_id, role="member")
    try:
        async with session.begin_nested():  # a savepoint, as in create_direct
            session.add(membership)
    except IntegrityError:  # joined concurrently: already a member
        return await access_member(session, user_id=user_id, chat_id=chat_id)
    after_commit(session, lambda: _announce_joined(session, broker, chat, [user_id], now=now))
    await add_notice(
        session, broker, chat, actor_id=user_id, action="joined", user_ids=[user_id], now=now
    )
    await session.commit()
    return chat, membership


async def remove_member(
    session: AsyncSession, broker: Broker, actor: Actor, *, chat_id: int, target_id: int
) -> None:
    """Yourself: leave. Owner/admin: remove a member (an admin cannot remove the owner;
    audited)."""
    user_id, now = actor
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    if chat.type == "direct":
        raise errors.ValidationFailed(
            "Delete a direct chat instead of leaving it", code="direct_chat"
        )
    target = (
        membership if target_id == user_id else await session.get(Membership, (chat_id, target_id))
    )
    if target is None:
        raise errors.NotFound("Not a member of this chat", code="member_not_found")
    if target_id != user_id and (
        membership.role not in {"owner", "admin"}
        or target.role == "owner"
        or (membership.role == "admin" and target.role == "admin")
    ):
        raise errors.Forbidden("You cannot remove this member", code="not_allowed")
    await session.delete(target)
    if target_id != user_id:  # a moderating act (leaving is not)
        details = {"user_id": target_id, "role": target.role}
        await audit(session, user_id, "chat.remove_member", "chat", chat_id, details, at=now)
    heir = None
    if target.role == "owner":
        heir = await _hand_over_ownership(session, chat_id, leaving=target_id)
        details = {"from": target_id, "to": heir}
        await audit(session, user_id, "chat.owner", "chat", chat_id, details, at=now)
    gone = UsersFrame.of([target_id], frames.ChatRemoved(chat_id))
    publish_on_commit(session, broker, gone, MembershipChanged(chat_id, [target_id], joined=False))
    action = "left" if target_id == user_id else "removed"
    await add_notice(
        session,
        broker,
        chat,
        actor_id=user_id,
        action=action,
        user_ids=[target_id],
        skip_user=target_id,  # it gets `chat_removed`, not the notice
        now=now,
    )
    if heir is not None:
        await add_notice(
            session,
            broker,
            chat,
            actor_id=user_id,
            action="owner_changed",
            user_ids=[heir],
            now=now,
        )
        # every process's caches learn its new role (`@all` works at once)
        publish_on_commit(session, broker, RolesChanged(chat_id, [heir]))
    after_commit(session, lambda: publish_chat_updated(session, broker, chat, now=now))
    if heir is not None:  # its my_role changed
        heirs = [heir]
        after_commit(session, lambda: publish_own_views(session, broker, chat, heirs, now=now))
    await session.commit()


async def _hand_over_ownership(session: AsyncSession, chat_id: int, *, leaving: int) -> int | None:
    """The longest-standing admin, else the longest-standing member, becomes owner; its id
    (None when nobody is left)."""
    heir = (
        await session.execute(
            select(Membership)
            .where(Membership.chat_id == chat_id, Membership.user_id != leaving)
            .order_by((Membership.role == "admin").desc(), Membership.joined_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    if heir is None:
        return None
    heir.role = "owner"
    return heir.user_id


async def set_role(
    session: AsyncSession, broker: Broker, actor: Actor, *, chat_id: int, target_id: int, role: str
) -> MemberPublic:
    """Owner only. Making someone else owner hands ownership over (the old owner becomes admin)."""
    user_id, now = actor
    chat, mine = await access_manager(session, user_id=user_id, chat_id=chat_id, owner_only=True)
    target = await session.get(Membership, (chat_id, target_id))
    if target is None:
        raise errors.NotFound("Not a member of this chat", code="member_not_found")
    if target_id == user_id and role != "owner":
        raise errors.ValidationFailed("Hand ownership to someone else first", code="owner_required")
    changed = [target_id]
    handing_over = role == "owner" and target_id != user_id
    if handing_over:
        mine.role = "admin"
        changed.append(user_id)
    details = {"user_id": target_id, "from": target.role, "to": role}
    if handing_over or target.role != role:
        notice = "owner_changed" if handing_over else "role_changed"
        await add_notice(
            session, broker, chat, actor_id=user_id, action=notice, user_ids=[target_id], now=now
        )
    target.role = role
    action = "chat.owner" if handing_over else "chat.role"
    await audit(session, user_id, action, "chat", chat_id, details, at=now)
    publish_on_commit(session, broker, RolesChanged(chat_id, [target_id, user_id]))
    after_commit(session, lambda: publish_chat_updated(session, broker, chat, now=now))
    # their my_role changed
    after_commit(session, lambda: publish_own_views(session, broker, chat, changed, now=now))
    await session.commit()
    user = await access_user(session, target_id)
    return MemberPublic(user=user_public(user), role=target.role, joined_at=target.joined_at)


async def _announce_joined(
    session: AsyncSession,
    broker: Broker,
    chat: Chat,
    users: list[int],
    *,
    now: datetime,
    online: Online = views.offline,
) -> None:
    """New members' sockets subscribe to the chat and each gets the chat as it sees it."""
    await broker.publish(MembershipChanged(chat.id, users, joined=True))
    await publish_own_views(session, broker, chat, users, now=now, online=online)
    await publish_chat_updated(session, broker, chat, now=now, skip=users)


async def publish_own_views(
    session: AsyncSession,
    broker: Broker,
    chat: Chat,
    users: Sequence[int],
    *,
    now: datetime,
    online: Online = views.offline,
) -> None:
    """Each of `users` gets the chat as it sees it (its own role and unread count)."""
    for uid in users:
        membership = await session.get(Membership, (chat.id, uid))
        public = await views.chat_public(
            session, chat, membership, viewer_id=uid, now=now, online=online
        )
        await broker.publish(UsersFrame.of([uid], frames.ChatUpdated(public)))


async def publish_chat_updated(
    session: AsyncSession,
    broker: Broker,
    chat: Chat,
    *,
    now: datetime,
    skip: Sequence[int] = (),
) -> None:
    """One frame for the whole chat: fields that differ per viewer are left out."""
    await session.refresh(chat)
    public = (await views.chat_public(session, chat, None, viewer_id=0, now=now)).model_dump(
        mode="json",
        exclude=set(views.PER_VIEWER | {"title"} if chat.type == "direct" else views.PER_VIEWER),
    )
    skip_user = skip[0] if len(skip) == 1 else None
    await broker.publish(ChatFrame.of(chat.id, frames.ChatUpdated(public), skip_user=skip_user))


async def count_chats(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(Chat.id)))).scalar_one())
