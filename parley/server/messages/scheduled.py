"""Scheduled messages: kept for their author until `send_at`, then sent by the worker
through the ordinary send path (or dropped, with an `error` frame, when the author can no
longer post there)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.server.actor import Actor
from parley.server.cache import SendChecks
from parley.server.db.models import ScheduledMessage
from parley.server.messages.schemas import ScheduledPublic
from parley.server.messages.service import do_send
from parley.server.messages.writer import Writer
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import UsersFrame
from parley.server.throttle import Throttle

log = logging.getLogger("parley.scheduled")
MAX_AHEAD = timedelta(days=365)
MAX_PENDING = 100  # scheduled messages per user
BATCH = 100  # due messages sent per sweep
# Worth another try at the next sweep: the message stays scheduled.
_TRANSIENT = (errors.RateLimited, errors.Overloaded, errors.Unavailable)


def scheduled_public(row: ScheduledMessage) -> ScheduledPublic:
    return ScheduledPublic(id=row.id, chat_id=row.chat_id, content=row.content, send_at=row.send_at)


def check_send_at(send_at: datetime, *, now: datetime) -> None:
    if send_at <= now:
        raise errors.ValidationFailed("send_at must be in the future")
    if send_at > now + MAX_AHEAD:
        raise errors.ValidationFailed("send_at must be at most one year ahead")


async def schedule_message(
    session: AsyncSession,
    checks: SendChecks,
    actor: Actor,
    *,
    chat_id: int,
    content: str,
    send_at: datetime,
) -> ScheduledMessage:
    """Keeps a message for later (the author must be able to post there now: the same
    checks as a send); 409 `too_many_scheduled` past MAX_PENDING."""
    user_id, now = actor
    check_send_at(send_at, now=now)
    await checks.check_send(user_id=user_id, chat_id=chat_id)
    pending = await session.scalar(
        select(func.count())
        .select_from(ScheduledMessage)
        .where(ScheduledMessage.user_id == user_id)
    )
    if (pending or 0) >= MAX_PENDING:
        raise errors.Conflict(
            f"At most {MAX_PENDING} scheduled messages", code="too_many_scheduled"
        )
    row = ScheduledMessage(
        user_id=user_id, chat_id=chat_id, content=content, send_at=send_at, created_at=now
    )
    session.add(row)
    await session.commit()
    return row


async def list_scheduled(
    session: AsyncSession, *, user_id: int, chat_id: int | None = None
) -> list[ScheduledMessage]:
    query = select(ScheduledMessage).where(ScheduledMessage.user_id == user_id)
    if chat_id is not None:
        query = query.where(ScheduledMessage.chat_id == chat_id)
    rows = await session.execute(query.order_by(ScheduledMessage.send_at, ScheduledMessage.id))
    return list(rows.scalars())


async def access_scheduled(
    session: AsyncSession, *, user_id: int, scheduled_id: int
) -> ScheduledMessage:
    """The caller's own scheduled message; NotFound for anyone else's, as for none."""
    row = await session.get(ScheduledMessage, scheduled_id)
    if row is None or row.user_id != user_id:
        raise errors.NotFound("No such scheduled message", code="scheduled_not_found")
    return row


async def update_scheduled(
    session: AsyncSession,
    actor: Actor,
    *,
    scheduled_id: int,
    content: str | None,
    send_at: datetime | None,
) -> ScheduledMessage:
    user_id, now = actor
    row = await access_scheduled(session, user_id=user_id, scheduled_id=scheduled_id)
    if send_at is not None:
        check_send_at(send_at, now=now)
        row.send_at = send_at
    if content is not None:
        row.content = content
    await session.commit()
    return row


async def delete_scheduled(session: AsyncSession, *, user_id: int, scheduled_id: int) -> None:
    row = await access_scheduled(session, user_id=user_id, scheduled_id=scheduled_id)
    await session.delete(row)
    await session.commit()


async def send_due(
    sessions: async_sessionmaker[AsyncSession],
    writer: Writer,
    checks: SendChecks,
    throttle: Throttle,
    broker: Broker,
    *,
    now: datetime,
) -> int:
    """Sends the scheduled messages whose time has come (worker), each as an ordinary
    message with the client_id `scheduled-<id>` (so two processes sweeping at once store
    it once); how many were sent or dropped."""
    async with sessions() as session:
        due = list(
            (
                await session.execute(
                    select(ScheduledMessage)
                    .where(ScheduledMessage.send_at <= now)
                    .order_by(ScheduledMessage.send_at, ScheduledMessage.id)
                    .limit(BATCH)
                )
            ).scalars()
        )
        session.expunge_all()
    done = 0
    for row in due:
        if await _deliver(writer, checks, throttle, broker, row):
            async with sessions() as session:
                found = await session.get(ScheduledMessage, row.id)
                if found is not None:
                    await session.delete(found)
                    await session.commit()
            done += 1
    return done


async def _deliver(
    writer: Writer, checks: SendChecks, throttle: Throttle, broker: Broker, row: ScheduledMessage
) -> bool:
    """Sends one; False to try again later. A refusal drops it and tells the author."""
    try:
        await do_send(
            writer,
            checks,
            throttle,
            user_id=row.user_id,
            chat_id=row.chat_id,
            content=row.content,
            client_id=f"scheduled-{row.id}",
        )
    except _TRANSIENT:
        return False
    except errors.ParleyError as exc:
        code = "blocked" if isinstance(exc, errors.Blocked) else "not_member"
        log.info("scheduled message %s dropped: %s", row.id, exc.code)
        detail = "The scheduled message was not sent: you can no longer post in this chat"
        await broker.publish(UsersFrame.of([row.user_id], frames.Error(code, detail, row.id)))
    return True
