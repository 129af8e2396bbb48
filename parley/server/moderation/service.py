"""Blocks between users and admin bans, with their expiry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from parley import errors
from parley.server.actor import Actor
from parley.server.audit import audit
from parley.server.db.models import Ban, Block, User
from parley.server.db.unit import after_commit, publish_on_commit
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import BlocksChanged, SessionsEnded, Unbanned


def in_force(column: InstrumentedAttribute[datetime | None], now: datetime) -> ColumnElement[bool]:
    return or_(column.is_(None), column > now)


async def blocked_ids(session: AsyncSession, user_id: int, *, now: datetime) -> list[int]:
    """The users this user blocks at `now` (whose messages it no longer sees in groups)."""
    rows = await session.execute(
        select(Block.blocked_id).where(Block.blocker_id == user_id, in_force(Block.expires_at, now))
    )
    return list(rows.scalars())


async def is_blocked_either(session: AsyncSession, a: int, b: int, *, now: datetime) -> bool:
    rows = await session.execute(
        select(Block.blocker_id).where(
            or_(
                (Block.blocker_id == a) & (Block.blocked_id == b),
                (Block.blocker_id == b) & (Block.blocked_id == a),
            ),
            in_force(Block.expires_at, now),
        )
    )
    return rows.first() is not None


async def check_can_add(
    session: AsyncSession, *, user_id: int, target_ids: Iterable[int], now: datetime
) -> None:
    """Nobody can be added to a chat by a user they block (403 blocked)."""
    targets = set(target_ids)
    if not targets:
        return
    blocker = (
        await session.execute(
            select(Block.blocker_id)
            .where(
                Block.blocked_id == user_id,
                Block.blocker_id.in_(targets),
                in_force(Block.expires_at, now),
            )
            .limit(1)
        )
    ).scalar_one_or_none()
    if blocker is not None:
        raise errors.Blocked(f"User {blocker} has blocked you")


async def block_user(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    target_id: int,
    duration_seconds: int | None,
) -> Block:
    """Creates or renews a block; commits, then updates the blocker's open sockets."""
    user_id, now = actor
    await _check_target(session, actor, target_id, act="block")
    expires = _until(now, duration_seconds)
    block = await session.get(Block, (user_id, target_id))
    if block is None:
        block = Block(blocker_id=user_id, blocked_id=target_id, created_at=now)
        session.add(block)
    block.expires_at = expires
    announce_blocks(session, broker, user_id, now=now)
    await session.commit()
    return block


async def _check_target(session: AsyncSession, actor: Actor, target_id: int, *, act: str) -> None:
    if target_id == actor.user_id:
        raise errors.ValidationFailed(f"You cannot {act} yourself")
    if await session.get(User, target_id) is None:
        raise errors.NotFound("No such user", code="user_not_found")


def _until(now: datetime, duration_seconds: int | None) -> datetime | None:
    """When a block or ban of `duration_seconds` from now ends (None: never)."""
    return now + timedelta(seconds=duration_seconds) if duration_seconds else None


async def unblock_user(
    session: AsyncSession, broker: Broker, actor: Actor, *, target_id: int
) -> None:
    user_id, now = actor
    result = await session.execute(
        delete(Block).where(Block.blocker_id == user_id, Block.blocked_id == target_id)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise errors.NotFound("You do not block this user", code="block_not_found")
    announce_blocks(session, broker, user_id, now=now)
    await session.commit()


async def list_blocks(session: AsyncSession, actor: Actor) -> list[Block]:
    user_id, now = actor
    rows = await session.execute(
        select(Block)
        .where(Block.blocker_id == user_id, in_force(Block.expires_at, now))
        .order_by(Block.created_at)
    )
    return list(rows.scalars())


def announce_blocks(session: AsyncSession, broker: Broker, user_id: int, *, now: datetime) -> None:
    """Once the transaction commits, tells every process whom `user_id` blocks now."""

    async def publish() -> None:
        blocked = await blocked_ids(session, user_id, now=now)
        await broker.publish(BlocksChanged(user_id, blocked))

    after_commit(session, publish)


async def ban_user(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    user_id: int,
    duration_seconds: int | None,
    reason: str,
) -> Ban:
    """Admins only (checked by the caller). Commits, then closes the user's sockets (4003)."""
    admin_id, now = actor
    await _check_target(session, actor, user_id, act="ban")
    ban = await session.get(Ban, user_id)
    if ban is None:
        ban = Ban(user_id=user_id, created_at=now)
        session.add(ban)
    ban.banned_by, ban.reason = admin_id, reason
    ban.expires_at = _until(now, duration_seconds)
    details = {"duration_seconds": duration_seconds, "reason": reason}
    await audit(session, admin_id, "user.ban", "user", user_id, details, at=now)
    publish_on_commit(session, broker, SessionsEnded(user_id, None, banned=True))
    await session.commit()
    return ban


async def unban_user(
    session: AsyncSession,
    broker: Broker | None = None,
    *,
    user_id: int,
    admin_id: int | None = None,
    now: datetime | None = None,
) -> None:
    """`admin_id`: who lifts it (audited)."""
    result = await session.execute(delete(Ban).where(Ban.user_id == user_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise errors.NotFound("This user is not banned", code="ban_not_found")
    await audit(session, admin_id, "user.unban", "user", user_id, at=now)
    if broker is not None:
        publish_on_commit(session, broker, Unbanned(user_id))
    await session.commit()


async def list_bans(session: AsyncSession, *, now: datetime) -> list[Ban]:
    rows = await session.execute(
        select(Ban).where(in_force(Ban.expires_at, now)).order_by(Ban.created_at)
    )
    return list(rows.scalars())


async def lift_expired(session: AsyncSession, broker: Broker, *, now: datetime) -> tuple[int, int]:
    """Deletes blocks and bans whose time is up; returns how many of each."""
    expired_blockers = list(
        (
            await session.execute(
                select(Block.blocker_id).where(Block.expires_at <= now).distinct()
            )
        ).scalars()
    )
    blocks = await session.execute(delete(Block).where(Block.expires_at <= now))
    bans = await session.execute(delete(Ban).where(Ban.expires_at <= now))
    for blocker in expired_blockers:
        announce_blocks(session, broker, blocker, now=now)
    await session.commit()
    return blocks.rowcount, bans.rowcount  # type: ignore[attr-defined]
