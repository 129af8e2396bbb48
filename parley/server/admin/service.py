"""What admins do to accounts: list them, deactivate and reactivate, grant or take admin
rights, reset two-factor sign-in. Every act writes an audit entry in its transaction.
Callers check that the actor is an admin."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.accounts.service import access_user, revoke_sessions
from parley.server.accounts.twofactor import turn_off
from parley.server.actor import Actor
from parley.server.audit import audit
from parley.server.db.models import User
from parley.server.realtime.broker import Broker


async def list_users(session: AsyncSession, *, q: str, limit: int, offset: int) -> list[User]:
    """Every account, deactivated ones too, matched on username, display name or email."""
    query = select(User).order_by(User.username_key).limit(limit).offset(offset)
    if q:
        pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern += "%"
        query = query.where(
            or_(
                User.username_key.like(pattern, escape="\\"),
                User.email_key.like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
            )
        )
    return list((await session.execute(query)).scalars())


async def deactivate_user(
    session: AsyncSession, broker: Broker, actor: Actor, *, user_id: int
) -> None:
    """The account can no longer sign in; its sessions end and its sockets close (4003);
    its messages stay. Commits."""
    admin_id, now = actor
    if user_id == admin_id:
        raise errors.ValidationFailed("You cannot deactivate yourself", code="self_deactivation")
    user = await access_user(session, user_id)
    if user.deactivated_at is None:
        user.deactivated_at = now
        await audit(session, admin_id, "user.deactivate", "user", user_id, at=now)
    await revoke_sessions(session, broker, user_id=user_id, banned=True, now=now)


async def reactivate_user(session: AsyncSession, actor: Actor, *, user_id: int) -> None:
    admin_id, now = actor
    user = await access_user(session, user_id)
    if user.deactivated_at is not None:
        user.deactivated_at = None
        await audit(session, admin_id, "user.reactivate", "user", user_id, at=now)
    await session.commit()


async def set_admin(session: AsyncSession, actor: Actor, *, user_id: int, is_admin: bool) -> User:
    """Grants or takes admin rights; an admin cannot take its own (someone must be left)."""
    admin_id, now = actor
    if user_id == admin_id and not is_admin:
        raise errors.ValidationFailed("You cannot take your own admin rights", code="self_demotion")
    user = await access_user(session, user_id)
    if user.is_admin != is_admin:
        user.is_admin = is_admin
        details = {"is_admin": is_admin}
        await audit(session, admin_id, "user.admin", "user", user_id, details, at=now)
    await session.commit()
    return user


async def reset_two_factor(session: AsyncSession, actor: Actor, *, user_id: int) -> User:
    """Turns the user's two-factor sign-in off (a lost phone); it may set it up again."""
    admin_id, now = actor
    user = await access_user(session, user_id)
    had = user.totp_enabled
    await turn_off(session, user)
    await audit(session, admin_id, "user.2fa_reset", "user", user_id, {"was_on": had}, at=now)
    await session.commit()
    return user
