"""E-mail verification and password reset: single-use tokens sent as links.

Only a token's hash is stored. Redeeming one is one UPDATE that succeeds only while the
token is unused and unexpired, so a link works once even when clicked twice at once. A new
reset link voids the older ones, and so does a password change (accounts.service).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.security import hash_password, hash_token
from parley.server.accounts.service import get_user_by_login, revoke_sessions
from parley.server.db.models import EmailToken, User
from parley.server.db.unit import after_commit
from parley.server.email import templates
from parley.server.email.mailer import Mailer
from parley.server.realtime.broker import Broker
from parley.server.throttle import Throttle

VERIFY_TTL = timedelta(hours=24)
RESET_TTL = timedelta(hours=1)
FORGOT_DETAIL = "If an account has this address, a link to reset its password is on its way"


class TokenInvalid(
    errors.ParleyError,
    status=410,
    code="token_invalid",
    detail="This link has expired or has already been used",
): ...


def verify_url(base: str, token: str) -> str:
    # The token rides in the fragment: browsers never send it, so no log records it.
    return f"{base}/verify-email#{token}"


def reset_url(base: str, token: str) -> str:
    return f"{base}/reset-password#{token}"


async def issue(
    session: AsyncSession, *, user: User, purpose: str, ttl: timedelta, now: datetime
) -> str:
    """A new token for `user` (the older unused ones of that purpose stop working); the
    caller commits."""
    await void_tokens(session, user_id=user.id, purpose=purpose, now=now)
    token = secrets.token_urlsafe(32)
    session.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(token),
            email=user.email,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    await session.flush()
    return token


async def void_tokens(session: AsyncSession, *, user_id: int, purpose: str, now: datetime) -> None:
    await session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


async def _redeem(session: AsyncSession, *, token: str, purpose: str, now: datetime) -> User:
    """Spends the token (TokenInvalid when unknown, used, expired or for another address)."""
    row = (
        await session.execute(
            select(EmailToken, User)
            .join(User, User.id == EmailToken.user_id)
            .where(EmailToken.token_hash == hash_token(token), EmailToken.purpose == purpose)
        )
    ).first()
    if row is None:
        raise TokenInvalid()
    found, user = row
    spent = await session.execute(
        update(EmailToken)
        .where(
            EmailToken.id == found.id,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise TokenInvalid()
    if found.email.lower() != user.email_key:  # the address changed since it was sent
        raise TokenInvalid()
    return user


def _send(mailer: Mailer, kind: str, *, to: str, language: str, who: str, url: str) -> None:
    written = templates.write(kind, language, who=who, url=url)
    mailer.post(
        mailer.compose(to=to, subject=written.subject, text=written.text, html=written.html)
    )


async def _mail_after_commit(
    session: AsyncSession, mailer: Mailer, kind: str, *, user: User, url: str, language: str
) -> None:
    """Commits, then mails `kind` with `url` to the user (a link whose token is committed)."""
    to, who = user.email, user.username

    async def mail() -> None:
        _send(mailer, kind, to=to, language=language, who=who, url=url)

    after_commit(session, mail)
    await session.commit()


async def send_verification(
    session: AsyncSession, mailer: Mailer, *, user: User, base: str, language: str, now: datetime
) -> None:
    """Issues a verification link and mails it once the token is committed; commits. Nothing
    when e-mail is off (the address then stays unverified)."""
    if not mailer.enabled:
        return
    token = await issue(session, user=user, purpose="verify", ttl=VERIFY_TTL, now=now)
    url = verify_url(base, token)
    await _mail_after_commit(session, mailer, "verify", user=user, url=url, language=language)


async def verify_email(session: AsyncSession, *, token: str, now: datetime) -> User:
    user = await _redeem(session, token=token, purpose="verify", now=now)
    user.email_verified_at = now
    await session.commit()
    return user


async def forgot_password(
    session: AsyncSession,
    mailer: Mailer,
    throttle: Throttle,
    *,
    email: str,
    client_ip: str,
    base: str,
    language: str,
    now: datetime,
) -> None:
    """The same outcome whether or not the address is known: a link is mailed if it is.
    At most PARLEY_RATE_FORGOT per address and PARLEY_RATE_FORGOT_IP per client (429)."""
    mailer.check()
    detail = "Too many password reset requests, try again later"
    await throttle.hit("forgot_ip", client_ip, detail=detail)
    await throttle.hit("forgot", email.strip().lower(), detail=detail)
    user = await get_user_by_login(session, email)
    if user is None or user.email_key != email.strip().lower():
        await session.commit()
        return
    token = await issue(session, user=user, purpose="reset", ttl=RESET_TTL, now=now)
    url = reset_url(base, token)
    await _mail_after_commit(session, mailer, "reset", user=user, url=url, language=language)


async def reset_link(
    session: AsyncSession, *, username: str, base: str, now: datetime
) -> str | None:
    """A one-time reset link for `username` (the `parley reset-password` command); commits."""
    user = await get_user_by_login(session, username)
    if user is None:
        return None
    token = await issue(session, user=user, purpose="reset", ttl=RESET_TTL, now=now)
    await session.commit()
    return reset_url(base, token)


async def reset_password(
    session: AsyncSession, broker: Broker, *, token: str, new_password: str, now: datetime
) -> None:
    """Sets the new password and revokes every session of the user (their sockets close)."""
    new_hash = await asyncio.to_thread(hash_password, new_password)  # before any lock is held
    user = await _redeem(session, token=token, purpose="reset", now=now)
    user.password_hash = new_hash
    await void_tokens(session, user_id=user.id, purpose="reset", now=now)
    await revoke_sessions(session, broker, user_id=user.id, now=now)  # commits


def send_invite(mailer: Mailer, *, to: str, url: str, inviter: str, language: str = "en") -> None:
    _send(mailer, "invite", to=to, language=language, who=inviter, url=url)
