"""Incoming webhooks in Slack's shape: whoever holds a hook's URL posts in its chat.

Each hook has a bot user (its name as display name) that is a member of the chat; a post
with `username` is sent by a sender of the hook named so (made once, then reused), so
the name stays right in the history too. Posts go through the send path every transport
shares, limited per hook (PARLEY_RATE_WEBHOOK).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.chats.access import access_manager
from parley.server.db.models import Membership, User, Webhook
from parley.server.db.unit import publish_on_commit
from parley.server.integrations.bots import create_bot_user
from parley.server.integrations.schemas import WebhookPublic
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import MembershipChanged
from parley.server.text import check_content, check_name

MAX_NAMED_SENDERS = 20  # per hook: past it, other names post as the hook itself


class BadPayload(
    errors.ParleyError,
    status=400,
    code="validation_error",
    detail="The payload needs a non-empty text",
):
    """What Slack answers a bad payload with: 400 (not 422), for its clients' sake."""


def hook_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/hooks/{token}"


def webhook_public(hook: Webhook, base: str) -> WebhookPublic:
    return WebhookPublic(
        id=hook.id,
        chat_id=hook.chat_id,
        name=hook.name,
        url=hook_url(base, hook.token),
        created_at=hook.created_at,
    )


async def _sender(
    session: AsyncSession,
    broker: Broker,
    *,
    chat_id: int,
    username: str,
    display_name: str,
    owner_id: int,
) -> User:
    """A bot user for a hook, a member of its chat (flushed; announced on commit)."""
    user = await create_bot_user(
        session, username=username, display_name=display_name, owner_id=owner_id
    )
    session.add(Membership(chat_id=chat_id, user_id=user.id, role="member"))
    await session.flush()
    publish_on_commit(session, broker, MembershipChanged(chat_id, [user.id], joined=True))
    return user


async def create_webhook(
    session: AsyncSession, broker: Broker, *, user_id: int, chat_id: int, name: str, base: str
) -> WebhookPublic:
    """Owner or admin of the chat. Commits."""
    await access_manager(session, user_id=user_id, chat_id=chat_id)
    sender = await _sender(
        session,
        broker,
        chat_id=chat_id,
        username="hook-" + secrets.token_hex(6),
        display_name=name,
        owner_id=user_id,
    )
    hook = Webhook(
        chat_id=chat_id,
        name=name,
        token=secrets.token_urlsafe(32),
        bot_id=sender.id,
        created_by=user_id,
    )
    session.add(hook)
    await session.flush()
    public = webhook_public(hook, base)
    await session.commit()
    return public


async def list_webhooks(
    session: AsyncSession, *, user_id: int, chat_id: int, base: str
) -> list[WebhookPublic]:
    await access_manager(session, user_id=user_id, chat_id=chat_id)
    rows = await session.execute(
        select(Webhook).where(Webhook.chat_id == chat_id).order_by(Webhook.id)
    )
    return [webhook_public(hook, base) for hook in rows.scalars()]


async def delete_webhook(
    session: AsyncSession, *, user_id: int, chat_id: int, hook_id: int
) -> None:
    """Its URL stops working at once; what it posted stays."""
    await access_manager(session, user_id=user_id, chat_id=chat_id)
    hook = await session.get(Webhook, hook_id)
    if hook is None or hook.chat_id != chat_id:
        raise errors.NotFound("No such webhook", code="webhook_not_found")
    await session.delete(hook)
    await session.commit()


def parse_payload(body: bytes, content_type: str) -> tuple[str, str | None]:
    """(text, username) of a Slack-shaped post: JSON, or a form whose `payload` field holds
    that JSON. BadPayload when there is no text."""
    raw: object = None
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = parse_qs(body.decode(), keep_blank_values=True)
            raw = json.loads(fields["payload"][0]) if "payload" in fields else None
        else:
            raw = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("The payload is not valid JSON") from None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("text"), str):
        raise BadPayload()
    try:
        text = check_content(raw["text"])
    except ValueError as exc:
        raise BadPayload(f"text {exc}") from None
    username = raw.get("username")
    if username is not None and not isinstance(username, str):
        raise BadPayload("username must be text")
    if username is not None:
        try:
            username = check_name(username)
        except ValueError as exc:
            raise BadPayload(f"username {exc}") from None
    return text, username or None


async def find_hook(session: AsyncSession, token: str) -> Webhook:
    hook = (
        await session.execute(select(Webhook).where(Webhook.token == token))
    ).scalar_one_or_none()
    if hook is None:
        raise errors.NotFound("No such webhook", code="webhook_not_found")
    return hook


async def sender_for(
    session: AsyncSession, broker: Broker, *, hook: Webhook, username: str | None
) -> int:
    """The hook's own sender, or its sender named `username` (made on first use). Commits
    what it makes."""
    if username is None:
        return hook.bot_id
    digest = hashlib.sha256(username.encode()).hexdigest()[:12]
    key = f"hook{hook.id}-{digest}"[:32]
    found = await session.scalar(select(User.id).where(User.username_key == key))
    if found is not None:
        return int(found)
    named = await session.scalar(
        select(func.count()).select_from(User).where(User.username_key.like(f"hook{hook.id}-%"))
    )
    if (named or 0) >= MAX_NAMED_SENDERS:  # whoever holds the URL cannot make users at will
        return hook.bot_id
    try:
        user = await _sender(
            session,
            broker,
            chat_id=hook.chat_id,
            username=key,
            display_name=username,
            owner_id=hook.created_by or hook.bot_id,
        )
        await session.commit()
    except (errors.Conflict, IntegrityError):  # made meanwhile by a concurrent post
        await session.rollback()
        found = await session.scalar(select(User.id).where(User.username_key == key))
        if found is None:
            raise
        return int(found)
    return user.id
