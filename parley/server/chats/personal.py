"""A member's own settings for a chat (notify level, mute) and its draft: they reach only
the member's own sockets, as the chat it sees (`chat_updated`), once they commit."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.actor import Actor
from parley.server.chats import views
from parley.server.chats.access import access_member
from parley.server.chats.schemas import ChatSettings
from parley.server.chats.service import publish_own_views
from parley.server.db.models import Chat, Membership
from parley.server.db.unit import after_commit
from parley.server.realtime.broker import Broker


async def update_settings(
    session: AsyncSession, broker: Broker, actor: Actor, *, chat_id: int, settings: ChatSettings
) -> tuple[Chat, Membership]:
    """The caller's own settings for a chat (members only); fields left out stay. A mute that
    has already ended is no mute. A real change commits, then reaches the caller's sockets
    (and only theirs) as a `chat_updated`; a change that changes nothing writes and sends
    nothing."""
    user_id, now = actor
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    changed = False
    if "notify" in settings.model_fields_set and settings.notify != membership.notify:
        membership.notify, changed = settings.notify, True
    if "muted_until" in settings.model_fields_set:
        wanted = views.FOREVER if settings.muted_until == "forever" else settings.muted_until
        if isinstance(wanted, datetime):
            wanted = wanted.astimezone(UTC) if wanted > now else None
        if views.muted_public(wanted, now) != views.muted_public(membership.muted_until, now):
            membership.muted_until, changed = wanted, True
    if changed:
        after_commit(session, lambda: publish_own_views(session, broker, chat, [user_id], now=now))
        await session.commit()
    return chat, membership


async def set_draft(
    session: AsyncSession, broker: Broker, actor: Actor, *, chat_id: int, content: str
) -> None:
    """Keeps the caller's draft for a chat (members only; blank text clears it). A real
    change commits, then reaches the caller's sockets as `chat_updated`."""
    user_id, now = actor
    chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
    wanted = content if content.strip() else None
    if wanted == membership.draft:
        return
    membership.draft = wanted
    membership.draft_updated_at = now if wanted is not None else None
    after_commit(session, lambda: publish_own_views(session, broker, chat, [user_id], now=now))
    await session.commit()
