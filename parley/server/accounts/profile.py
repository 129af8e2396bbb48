"""A user's own profile: name, bio, e-mail, and the presence of mind (status, do not
disturb, read-receipt sharing), with the worker that ends the statuses and dnd periods
whose time has come. A change others see reaches them once it commits (`announce_user`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.accounts.schemas import StatusSet
from parley.server.accounts.service import announce_user, status_public
from parley.server.db.models import User
from parley.server.db.unit import publish_on_commit
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import ProfileChanged


async def update_profile(
    session: AsyncSession,
    broker: Broker,
    *,
    user: User,
    display_name: str | None,
    bio: str | None,
    email: str | None,
    max_group: int,
    mind: MindUpdate | None = None,
    email_notifications: bool | None = None,
    language: str | None = None,
) -> User:
    """Commits; a change others see (name, bio, status, dnd) then reaches the user's
    sockets and those who hear its presence as `user_updated`."""
    seen_by_others = mind is not None and set_mind(user, mind)
    if email_notifications is not None:
        user.email_notifications = email_notifications
    if language is not None:
        user.language = language
    if display_name is not None:
        user.display_name = display_name
        # senders' names are cached by every process
        publish_on_commit(session, broker, ProfileChanged(user.id))
    if bio is not None:
        user.bio = bio
    if email is not None and email.lower() != user.email_key:
        clash = await session.execute(select(User.id).where(User.email_key == email.lower()))
        if clash.first() is not None:
            raise errors.Conflict("This email is already registered", code="email_taken")
        user.email, user.email_key = email, email.lower()
        user.email_verified_at = None  # the new address is confirmed by its own link
    if display_name is not None or bio is not None or seen_by_others:
        await announce_user(session, broker, user, max_group=max_group)
    await session.commit()
    return user


@dataclass(frozen=True, slots=True)
class MindUpdate:
    """The presence-of-mind fields of a profile change; `fields` names those given."""

    fields: frozenset[str]
    status: StatusSet | None
    dnd_until: datetime | None
    share_read_receipts: bool | None
    now: datetime


def set_mind(user: User, change: MindUpdate) -> bool:
    """Applies status, dnd and read-receipt sharing; whether anything others see changed.
    A status needs an emoji or a text; its `until` and a dnd must be in the future (a past
    dnd time ends the dnd)."""
    before = (status_public(user), user.dnd_until)
    if "status" in change.fields:
        _set_status(user, change.status, now=change.now)
    if "dnd_until" in change.fields:
        until = change.dnd_until
        user.dnd_until = until if until is not None and until > change.now else None
    if change.share_read_receipts is not None:
        user.share_read_receipts = change.share_read_receipts
    return before != (status_public(user), user.dnd_until)


def _set_status(user: User, status: StatusSet | None, *, now: datetime) -> None:
    if status is None:
        user.status_emoji = user.status_text = user.status_until = None
        return
    if status.emoji is None and not status.text:
        raise errors.ValidationFailed("A status needs an emoji or a text")
    if status.until is not None and status.until <= now:
        raise errors.ValidationFailed("A status's `until` must be in the future")
    user.status_emoji, user.status_text = status.emoji, status.text
    user.status_until = status.until


async def end_expired_minds(
    session: AsyncSession, broker: Broker, *, now: datetime, max_group: int
) -> int:
    """Ends the statuses and dnd periods whose time has come (worker), announcing each
    user once the change commits; how many users changed."""
    rows = await session.execute(
        select(User).where(or_(User.status_until <= now, User.dnd_until <= now)).limit(500)
    )
    users = list(rows.scalars())
    for user in users:
        if user.status_until is not None and user.status_until <= now:
            user.status_emoji = user.status_text = user.status_until = None
        if user.dnd_until is not None and user.dnd_until <= now:
            user.dnd_until = None
        await announce_user(session, broker, user, max_group=max_group)
    if users:
        await session.commit()
    return len(users)
