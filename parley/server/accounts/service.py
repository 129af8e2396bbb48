"""Accounts: registration, login sessions with rotating refresh tokens, profile, user lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.clock import Clock
from parley.security import (
    MFA_TTL_SECONDS,
    hash_password,
    hash_token,
    make_access_token,
    make_mfa_token,
    make_refresh_token,
    new_session_id,
)
from parley.security import verify_password as _verify_password
from parley.server.accounts.schemas import StatusPublic, UserPublic
from parley.server.chats.general import join_general
from parley.server.db.models import Ban, EmailToken, RefreshToken, User
from parley.server.db.models import Session as LoginSession
from parley.server.db.unit import publish_on_commit
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import SessionsEnded, UsersFrame
from parley.server.realtime.presence import presence_audiences
from parley.server.throttle import Throttle


@dataclass(frozen=True, slots=True)
class Issuer:
    """What opening a login session and minting its tokens use: the signing key, the
    lifetimes (seconds) and the clock."""

    jwt_key: str
    access_ttl: int
    refresh_ttl: int
    clock: Clock


@dataclass(frozen=True, slots=True)
class Client:
    """Where a sign-in comes from: the client's address and its User-Agent."""

    ip: str
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class Tokens:
    user: User
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: int


@dataclass(frozen=True, slots=True)
class Challenge:
    """A right password on an account with two-factor sign-in: the second step is owed
    (`POST /login/2fa` with this token and a code)."""

    mfa_token: str
    expires_in: int


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify_password, password_hash, password)


def avatar_url(user: User) -> str | None:
    if not user.avatar_key:
        return None
    version = user.avatar_key.rsplit("/", 1)[-1][:8]
    return f"/service/api/users/{user.id}/avatar?v={version}"


def sees_email(viewer: User, user_id: int) -> bool:
    """A user's email is shown to that user and to admins, never in anyone else's listing."""
    return viewer.id == user_id or viewer.is_admin


def user_public(user: User, *, online: bool = False, own: bool = False) -> UserPublic:
    """`own`: the caller may see the private fields (its own profile, or an admin)."""
    public = UserPublic(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        bio=user.bio,
        avatar_url=avatar_url(user),
        is_admin=user.is_admin,
        online=online,
        last_seen_at=user.last_seen_at,
        created_at=user.created_at,
        deactivated=user.deactivated_at is not None,
        is_bot=bool(user.is_bot),
        owner_id=user.owner_id,
        status=status_public(user),
        dnd_until=user.dnd_until,
    )
    if own:
        public.email = user.email
        public.email_verified = user.email_verified_at is not None
        public.email_notifications = user.email_notifications
        public.language = user.language
        public.two_factor = user.totp_enabled
        public.share_read_receipts = user.share_read_receipts is not False
    return public


def status_public(user: User) -> StatusPublic | None:
    if user.status_emoji is None and not user.status_text:
        return None
    return StatusPublic(
        emoji=user.status_emoji, text=user.status_text or "", until=user.status_until
    )


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def access_user(session: AsyncSession, user_id: int) -> User:
    user = await get_user(session, user_id)
    if user is None:
        raise errors.NotFound("No such user", code="user_not_found")
    return user


async def get_user_by_login(session: AsyncSession, login: str) -> User | None:
    key = login.strip().lower()
    return (
        await session.execute(
            select(User).where(or_(User.username_key == key, User.email_key == key))
        )
    ).scalar_one_or_none()


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    email: str,
    password: str,
    display_name: str | None = None,
    on_created: Callable[[AsyncSession, User], Awaitable[None]] | None = None,
) -> User:
    """Creates the user and joins it to `general`; commits. 409 on a taken name or email.
    `on_created` runs in the same transaction, once the user has its id (an invite's use)."""
    # Hashed before any query: argon2 takes a while, and no transaction (on SQLite, the
    # write lock) may be held meanwhile.
    password_hash = await asyncio.to_thread(hash_password, password)
    await _check_free(session, username=username, email=email)
    user = User(
        username=username,
        username_key=username.lower(),
        email=email,
        email_key=email.lower(),
        password_hash=password_hash,
        display_name=display_name or username,
        bio="",
        is_admin=False,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        await session.rollback()
        await _check_free(session, username=username, email=email)
        raise errors.Conflict("Username or email already taken") from exc
    if on_created is not None:
        await on_created(session, user)
    await join_general(session, user.id)
    await session.commit()
    return user


async def _check_free(session: AsyncSession, *, username: str, email: str) -> None:
    taken = (
        await session.execute(
            select(User.username_key, User.email_key).where(
                or_(User.username_key == username.lower(), User.email_key == email.lower())
            )
        )
    ).all()
    for username_key, _ in taken:
        if username_key == username.lower():
            raise errors.Conflict("This username is taken", code="username_taken")
    if taken:
        raise errors.Conflict("This email is already registered", code="email_taken")


async def login(
    session: AsyncSession,
    issuer: Issuer,
    throttle: Throttle,
    *,
    username: str,
    password: str,
    client: Client,
) -> Tokens | Challenge:
    """Same answers for an unknown name and a real account, under the limit and over it.

    Failures count per account (its username and email together) and client IP: a slot is
    reserved before the password is checked, so concurrent guesses cannot slip past, and
    given back on success. Guesses from one address never lock the owner out elsewhere.
    Failures also count per client IP over all accounts (PARLEY_RATE_LOGIN_IP).
    """
    user = await get_user_by_login(session, username)
    await session.commit()  # end the read before the slow hash check: no lock held meanwhile
    account = f"user:{user.id}" if user else f"name:{username.strip().lower()}"
    slot = login_slot(account, client.ip)
    detail = "Too many failed logins, try again shortly"
    await throttle.check("login_ip", client.ip, detail=detail)
    await throttle.hit("login", slot, detail=detail)
    if (
        not await verify_password(user.password_hash if user else None, password)
        or user is None
        or user.is_bot  # a bot has no password (its hash verifies nothing): never a login
    ):
        await throttle.allow("login_ip", client.ip)
        raise errors.InvalidCredentials()
    now = issuer.clock()
    if not user.totp_enabled:  # with a second factor the slot stays: each code tried counts
        await throttle.clear("login", slot)
    await check_may_sign_in(session, user, now=now)
    if user.totp_enabled:
        return Challenge(make_mfa_token(issuer.jwt_key, user_id=user.id, now=now), MFA_TTL_SECONDS)
    return await start_session(session, issuer, user=user, client=client)


def login_slot(account: str, client_ip: str) -> str:
    """The failed-login window of an account from one address."""
    return f"{account}|{client_ip}"


async def check_may_sign_in(session: AsyncSession, user: User, *, now: datetime) -> None:
    """Raises UserBanned or UserDeactivated (403) for a right password that may not sign in."""
    if await is_banned(session, user.id, now=now):
        raise errors.UserBanned()
    if user.deactivated_at is not None:
        raise errors.UserDeactivated()


async def is_banned(session: AsyncSession, user_id: int, *, now: datetime) -> bool:
    expires = (
        await session.execute(select(Ban.user_id, Ban.expires_at).where(Ban.user_id == user_id))
    ).first()
    return expires is not None and (expires[1] is None or expires[1] > now)


async def start_session(
    session: AsyncSession, issuer: Issuer, *, user: User, client: Client
) -> Tokens:
    now = issuer.clock()
    login_session = LoginSession(
        sid=new_session_id(),
        user_id=user.id,
        created_at=now,
        expires_at=now + timedelta(seconds=issuer.refresh_ttl),
        user_agent=client.user_agent[:200],
        ip=client.ip[:64],
        last_used_at=now,
    )
    session.add(login_session)
    await session.flush()
    tokens = await _issue(session, issuer, user=user, login_session=login_session)
    await session.commit()
    return tokens


async def _issue(
    session: AsyncSession, issuer: Issuer, *, user: User, login_session: LoginSession
) -> Tokens:
    refresh = make_refresh_token()
    session.add(RefreshToken(session_id=login_session.id, token_hash=hash_token(refresh)))
    ttl = issuer.access_ttl
    access = make_access_token(
        issuer.jwt_key,
        user_id=user.id,
        session_id=login_session.sid,
        ttl_seconds=ttl,
        now=issuer.clock(),
    )
    return Tokens(user, access, refresh, ttl, login_session.id)


async def refresh(
    session: AsyncSession, issuer: Issuer, broker: Broker, *, token: str, ip: str = ""
) -> Tokens:
    """Rotates the refresh token. A spent token means theft: its whole session is revoked.
    The session's `last_used_at` and `ip` follow."""
    now = issuer.clock()
    row = (
        await session.execute(
            select(RefreshToken, LoginSession)
            .join(LoginSession, LoginSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == hash_token(token))
        )
    ).first()
    if row is None:
        raise errors.Unauthorized("Unknown refresh token")
    refresh_token, login_session = row
    if login_session.revoked_at is not None or login_session.expires_at <= now:
        raise errors.Unauthorized("Session has ended")
    spent = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == refresh_token.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        await revoke_sessions(
            session, broker, user_id=login_session.user_id, ids=[login_session.id], now=now
        )
        raise errors.Unauthorized("Refresh token already used; session revoked")
    user = await access_user(session, login_session.user_id)
    if await is_banned(session, user.id, now=now):
        await session.rollback()
        raise errors.UserBanned()
    login_session.last_used_at = now
    if ip:
        login_session.ip = ip[:64]
    tokens = await _issue(session, issuer, user=user, login_session=login_session)
    await session.commit()
    return tokens


async def revoke_sessions(
    session: AsyncSession,
    broker: Broker,
    *,
    user_id: int,
    ids: Iterable[int] | None = None,
    keep: int | None = None,
    banned: bool = False,
    now: datetime,
) -> None:
    """Ends sessions (all of a user's, or `ids`, but never `keep`); commits, then closes sockets."""
    query = update(LoginSession).where(
        LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None)
    )
    id_list = list(ids) if ids is not None else None
    if id_list is not None:
        query = query.where(LoginSession.id.in_(id_list))
    if keep is not None:
        query = query.where(LoginSession.id != keep)
    await session.execute(query.values(revoked_at=now))
    publish_on_commit(session, broker, SessionsEnded(user_id, id_list, keep=keep, banned=banned))
    await session.commit()


async def change_password(
    session: AsyncSession,
    broker: Broker,
    *,
    user: User,
    session_id: int,
    current_password: str,
    new_password: str,
    now: datetime,
) -> None:
    """Every other session of the user is revoked (and its sockets closed)."""
    await session.commit()  # no transaction held across the slow hashing below
    if not await verify_password(user.password_hash, current_password):
        raise errors.Forbidden("Current password is wrong", code="invalid_credentials")
    new_hash = await asyncio.to_thread(hash_password, new_password)
    user.password_hash = new_hash
    await session.execute(  # a reset link sent before the change no longer works
        update(EmailToken)
        .where(
            EmailToken.user_id == user.id,
            EmailToken.purpose == "reset",
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    await session.flush()
    await revoke_sessions(session, broker, user_id=user.id, keep=session_id, now=now)


async def announce_user(
    session: AsyncSession, broker: Broker, user: User, *, max_group: int
) -> None:
    """Once the change commits, `user_updated` (the public profile, no e-mail) reaches the
    user's own sockets and those who hear its presence (direct chats, small groups)."""
    audience = (await presence_audiences(session, [user.id], max_group=max_group)).get(user.id, [])
    frame = frames.UserUpdated(user_public(user))
    publish_on_commit(session, broker, UsersFrame.of([user.id, *audience], frame))


async def list_users(session: AsyncSession, *, q: str, limit: int, offset: int) -> list[User]:
    query = select(User).order_by(User.username_key).limit(limit).offset(offset)
    if q:
        pattern = (
            "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(
            or_(
                User.username_key.like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
            )
        )
    return list((await session.execute(query)).scalars())


async def promote_user(session: AsyncSession, *, username: str) -> bool:
    result = await session.execute(
        update(User)
        .where(User.username_key == username.lower(), User.is_bot.is_(False))
        .values(is_admin=True)
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
