"""Bots: users owned by a user, authenticated by a long-lived token of a bot session.

A bot's token is an access token (a JWT, so the gateway accepts it statelessly) whose
`sid` names a session row like a person's login, only with a long expiry and no refresh
token. The server checks that session on every request and socket as it checks any, so
rotating the token (the old session revoked) or deleting the bot ends the old token
within the session-ended machinery's 5 seconds, on REST and WebSocket alike.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.security import make_access_token, new_session_id
from parley.server.accounts.service import Issuer, revoke_sessions, user_public
from parley.server.audit import audit
from parley.server.db.models import Bot, BotDelivery, User
from parley.server.db.models import Session as LoginSession
from parley.server.db.unit import publish_on_commit
from parley.server.integrations.schemas import (
    BUILTIN_NAMES,
    BotCreated,
    BotPublic,
    CommandSpec,
    DeliveryPublic,
)
from parley.server.outbound import Rules
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import ProfileChanged

MAX_BOTS = 10  # per user; admins are not limited
TOKEN_TTL = 10 * 365 * 24 * 3600  # seconds: a bot's token lasts until rotated or deleted
NO_PASSWORD = "!"  # not an argon2 hash: verifies no password (security.verify_password)
LOG_SIZE = 50  # deliveries kept per bot
BOT_AGENT = "bot token"


def new_signing_secret() -> str:
    return secrets.token_hex(32)


def bot_email(username_key: str) -> str:
    """A bot has no mailbox; the column is unique, so it gets an address nobody can own."""
    return f"{username_key}@bots.invalid"


async def create_bot_user(
    session: AsyncSession, *, username: str, display_name: str, owner_id: int
) -> User:
    """A user row for a bot (or a webhook's sender): no password, no `general`. Flushes;
    Conflict when the username is taken."""
    key = username.lower()
    taken = await session.execute(select(User.id).where(User.username_key == key))
    if taken.first() is not None:
        raise errors.Conflict("This username is taken", code="username_taken")
    user = User(
        username=username,
        username_key=key,
        email=bot_email(key),
        email_key=bot_email(key),
        password_hash=NO_PASSWORD,
        display_name=display_name,
        bio="",
        is_admin=False,
        is_bot=True,
        owner_id=owner_id,
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise errors.Conflict("This username is taken", code="username_taken") from exc
    return user


async def _open_session(session: AsyncSession, issuer: Issuer, bot: User) -> tuple[int, str]:
    """A bot session and its token: (the session's row id, the token)."""
    now = issuer.clock()
    row = LoginSession(
        sid=new_session_id(),
        user_id=bot.id,
        created_at=now,
        expires_at=now + timedelta(seconds=TOKEN_TTL),
        user_agent=BOT_AGENT,
    )
    session.add(row)
    await session.flush()
    token = make_access_token(
        issuer.jwt_key, user_id=bot.id, session_id=row.sid, ttl_seconds=TOKEN_TTL, now=now
    )
    return row.id, token


async def create_bot(
    session: AsyncSession, issuer: Issuer, *, owner: User, username: str, display_name: str
) -> BotCreated:
    """At most MAX_BOTS per user (admins: any number); a bot cannot own bots. Commits."""
    if owner.is_bot:
        raise errors.Forbidden("A bot cannot own bots", code="bot_not_allowed")
    if not owner.is_admin:
        owned = await session.scalar(
            select(func.count()).select_from(Bot).where(Bot.owner_id == owner.id)
        )
        if (owned or 0) >= MAX_BOTS:
            raise errors.Forbidden(f"At most {MAX_BOTS} bots per user", code="too_many_bots")
    user = await create_bot_user(
        session, username=username, display_name=display_name, owner_id=owner.id
    )
    session_id, token = await _open_session(session, issuer, user)
    secret = new_signing_secret()
    session.add(
        Bot(
            user_id=user.id,
            owner_id=owner.id,
            event_url="",
            commands="[]",
            signing_secret=secret,
            session_id=session_id,
            created_at=issuer.clock(),
        )
    )
    await session.commit()
    return BotCreated(bot=user_public(user), token=token, signing_secret=secret)


def bot_public(user: User, bot: Bot) -> BotPublic:
    return BotPublic(
        bot=user_public(user),
        event_url=bot.event_url,
        commands=commands_of(bot),
        created_at=bot.created_at,
    )


def commands_of(bot: Bot) -> list[CommandSpec]:
    try:
        return [CommandSpec(**c) for c in json.loads(bot.commands or "[]")]
    except (ValueError, TypeError):
        return []


async def list_bots(session: AsyncSession, *, owner_id: int) -> list[BotPublic]:
    rows = await session.execute(
        select(User, Bot)
        .join(Bot, Bot.user_id == User.id)
        .where(Bot.owner_id == owner_id)
        .order_by(User.id)
    )
    return [bot_public(user, bot) for user, bot in rows.tuples()]


async def access_bot(session: AsyncSession, *, caller: User, bot_id: int) -> tuple[User, Bot]:
    """A bot its owner (or an admin) manages; NotFound for anyone else."""
    row = (
        await session.execute(
            select(User, Bot).join(Bot, Bot.user_id == User.id).where(User.id == bot_id)
        )
    ).first()
    if row is None or (row[1].owner_id != caller.id and not caller.is_admin):
        raise errors.NotFound("No such bot", code="bot_not_found")
    return row[0], row[1]


def check_event_url(url: str) -> str:
    """An http(s) address with a host ("" clears); whether it may be contacted is decided
    when an event is sent (the outbound rules, on the addresses actually connected to)."""
    if url:
        try:
            Rules().check_url(url)
        except errors.ParleyError as exc:
            raise errors.ValidationFailed(f"event_url: {exc.detail}") from None
    return url


async def update_bot(
    session: AsyncSession,
    broker: Broker,
    *,
    caller: User,
    bot_id: int,
    display_name: str | None,
    event_url: str | None,
    commands: list[CommandSpec] | None,
) -> BotPublic:
    user, bot = await access_bot(session, caller=caller, bot_id=bot_id)
    if display_name is not None:
        user.display_name = display_name
    if event_url is not None:
        bot.event_url = check_event_url(event_url)
    if commands is not None:
        names = [c.command for c in commands]
        clash = sorted(set(names) & BUILTIN_NAMES)
        if clash:
            raise errors.ValidationFailed(f"{clash[0]} is a built-in command")
        if len(set(names)) != len(names):
            raise errors.ValidationFailed("Each command may appear once")
        bot.commands = json.dumps([c.model_dump() for c in commands])
    # senders' names are cached by every process; so is where bots' events go
    publish_on_commit(session, broker, ProfileChanged(user.id))
    await session.commit()
    return bot_public(user, bot)


async def rotate_token(
    session: AsyncSession, broker: Broker, issuer: Issuer, *, caller: User, bot_id: int
) -> BotCreated:
    """A new token and signing secret; the old token's session is revoked (its requests
    refused and its sockets closed 4001 within 5 s)."""
    user, bot = await access_bot(session, caller=caller, bot_id=bot_id)
    old = bot.session_id
    bot.session_id, token = await _open_session(session, issuer, user)
    bot.signing_secret = secret = new_signing_secret()
    publish_on_commit(session, broker, ProfileChanged(user.id))
    now = issuer.clock()
    details = {"bot": user.username, "owner_id": bot.owner_id}
    await audit(session, caller.id, "bot.token", "user", user.id, details, at=now)
    await revoke_sessions(  # commits the new session with the old one's end, and the entry
        session, broker, user_id=user.id, ids=[old] if old else [], now=now
    )
    return BotCreated(bot=user_public(user), token=token, signing_secret=secret)


async def delete_bot(
    session: AsyncSession, broker: Broker, *, caller: User, bot_id: int, now: datetime
) -> None:
    """Its sessions end (sockets closed), then the user goes; its messages stay, without a
    sender."""
    user, _bot = await access_bot(session, caller=caller, bot_id=bot_id)
    await revoke_sessions(session, broker, user_id=user.id, now=now)
    await session.delete(user)
    publish_on_commit(session, broker, ProfileChanged(bot_id))
    await session.commit()


async def deliveries(session: AsyncSession, *, caller: User, bot_id: int) -> list[DeliveryPublic]:
    await access_bot(session, caller=caller, bot_id=bot_id)
    rows = await session.execute(
        select(BotDelivery)
        .where(BotDelivery.bot_id == bot_id)
        .order_by(BotDelivery.id.desc())
        .limit(LOG_SIZE)
    )
    return [DeliveryPublic.model_validate(d, from_attributes=True) for d in rows.scalars()]
