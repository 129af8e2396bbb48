"""Reports of messages: a member reports one (once), admins resolve the queue by dismissing,
deleting the message or banning its sender. A resolution is audited."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.actor import Actor
from parley.server.audit import audit
from parley.server.chats.access import access_member
from parley.server.db.models import Message, Report
from parley.server.messages.service import (
    access_message,
    erase_message,
    message_public,
    publish_update,
)
from parley.server.moderation.service import ban_user
from parley.server.realtime.broker import Broker

Resolution = Literal["dismiss", "delete_message", "ban_user"]


async def report_message(
    session: AsyncSession, actor: Actor, *, message_id: int, reason: str
) -> Report:
    """Members who can see the message only (404 otherwise); once per message and user
    (409 `already_reported`). Commits."""
    user_id, now = actor
    message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    await access_member(session, user_id=user_id, chat_id=message.chat_id)
    report = Report(message_id=message_id, reporter_id=user_id, reason=reason, created_at=now)
    try:
        async with session.begin_nested():
            session.add(report)
    except IntegrityError as exc:
        raise errors.Conflict(
            "You have already reported this message", code="already_reported"
        ) from exc
    await session.commit()
    return report


async def list_reports(
    session: AsyncSession, *, status: str | None, limit: int, before: int | None
) -> list[tuple[Report, Message]]:
    """Newest first, with their messages."""
    query = (
        select(Report, Message)
        .join(Message, Message.id == Report.message_id)
        .order_by(Report.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(Report.status == status)
    if before is not None:
        query = query.where(Report.id < before)
    return [(r, m) for r, m in (await session.execute(query)).all()]


async def resolve_report(
    session: AsyncSession,
    broker: Broker,
    actor: Actor,
    *,
    report_id: int,
    action: Resolution,
    duration_seconds: int | None,
) -> Report:
    """Admins only (checked by the caller). 409 `report_resolved` the second time.
    Commits, then tells the chat of a deleted message / closes a banned user's sockets."""
    admin_id, now = actor
    report = await session.get(Report, report_id)
    if report is None:
        raise errors.NotFound("No such report", code="report_not_found")
    if report.status == "resolved":
        raise errors.Conflict("This report is already resolved", code="report_resolved")
    message = await session.get(Message, report.message_id)
    assert message is not None  # the report goes with its message (ON DELETE CASCADE)
    report.status, report.resolution = "resolved", action
    report.resolved_at, report.resolved_by = now, admin_id
    details = {"action": action, "message_id": message.id, "sender_id": message.sender_id}
    await audit(session, admin_id, "report.resolve", "report", report_id, details, at=now)
    if action == "delete_message":
        return await _delete(session, broker, report, message, actor)
    if action == "ban_user" and message.sender_id is not None:
        await ban_user(
            session,
            broker,
            actor,
            user_id=message.sender_id,
            duration_seconds=duration_seconds,
            reason=report.reason,
        )  # commits the resolution with the ban
        return report
    await session.commit()
    return report


async def _delete(
    session: AsyncSession, broker: Broker, report: Report, message: Message, actor: Actor
) -> Report:
    admin_id, now = actor
    if message.deleted_at is None:
        details = {"chat_id": message.chat_id, "sender_id": message.sender_id}
        await audit(session, admin_id, "message.delete", "message", message.id, details, at=now)
        await erase_message(session, message, now=now)
    await session.commit()
    await publish_update(broker, await message_public(session, message))
    return report
