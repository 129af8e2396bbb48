"""HTTP routes of the admin area (users, reports, audit log) and the report action."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.accounts.schemas import SenderPublic, UserPublic
from parley.server.accounts.service import user_public
from parley.server.admin import reports, service
from parley.server.admin.schemas import (
    AdminUserUpdate,
    AuditEntryPublic,
    ReportCreate,
    ReportPublic,
    ReportResolve,
)
from parley.server.audit import list_audit
from parley.server.db.models import AuditEntry, Message, Report, User
from parley.server.deps import (
    MAX_PAGE,
    NO_CONTENT,
    AdminContextDep,
    AdminDep,
    Context,
    ContextDep,
    IdPath,
    Limit,
    OptionalId,
    PageDep,
    SessionDep,
)
from parley.server.messages.service import messages_public, senders_by_id
from parley.server.text import Plain

router = APIRouter(prefix="/service/api", tags=["admin"])


@router.get("/admin/users")
async def list_users(
    ctx: AdminContextDep, page: PageDep, q: Annotated[Plain, Query(max_length=254)] = ""
) -> list[UserPublic]:
    """With `email`, `two_factor` and `deactivated`; deactivated accounts included."""
    users = await service.list_users(ctx.session, q=q.strip(), limit=page.limit, offset=page.offset)
    return [_user(ctx, u) for u in users]


@router.post("/admin/users/{user_id}/deactivate", **NO_CONTENT)
async def deactivate(user_id: IdPath, ctx: AdminContextDep) -> None:
    await service.deactivate_user(ctx.session, ctx.broker, ctx.actor, user_id=user_id)


@router.post("/admin/users/{user_id}/reactivate", **NO_CONTENT)
async def reactivate(user_id: IdPath, ctx: AdminContextDep) -> None:
    await service.reactivate_user(ctx.session, ctx.actor, user_id=user_id)


@router.patch("/admin/users/{user_id}")
async def update_user(user_id: IdPath, body: AdminUserUpdate, ctx: AdminContextDep) -> UserPublic:
    user = await service.set_admin(ctx.session, ctx.actor, user_id=user_id, is_admin=body.is_admin)
    return _user(ctx, user)


@router.post("/admin/users/{user_id}/2fa/reset")
async def reset_two_factor(user_id: IdPath, ctx: AdminContextDep) -> UserPublic:
    user = await service.reset_two_factor(ctx.session, ctx.actor, user_id=user_id)
    return _user(ctx, user)


def _user(ctx: Context, user: User) -> UserPublic:
    return user_public(user, own=True, online=ctx.state.hub.is_online(user.id))


@router.post("/messages/{message_id}/report", status_code=201)
async def report_message(message_id: IdPath, body: ReportCreate, ctx: ContextDep) -> ReportPublic:
    report = await reports.report_message(
        ctx.session, ctx.actor, message_id=message_id, reason=body.reason
    )
    user = ctx.me.user
    reporter = SenderPublic(id=user.id, username=user.username, display_name=user.display_name)
    return _report(report, await _chat_id(ctx.session, report), reporter)


@router.get("/admin/reports")
async def list_reports(
    _me: AdminDep,
    session: SessionDep,
    status: Literal["open", "resolved"] | None = None,
    before: OptionalId = None,
    limit: Limit = 50,
) -> list[ReportPublic]:
    """Newest first, each with its message."""
    rows = await reports.list_reports(
        session, status=status, limit=min(limit, MAX_PAGE), before=before
    )
    public = await messages_public(session, [m for _, m in rows])
    people = await _people(session, {r.reporter_id for r, _ in rows})
    return [
        _report(r, m.chat_id, people.get(r.reporter_id or 0), message=p)
        for (r, m), p in zip(rows, public, strict=True)
    ]


@router.post("/admin/reports/{report_id}/resolve")
async def resolve_report(
    report_id: IdPath, body: ReportResolve, ctx: AdminContextDep
) -> ReportPublic:
    report = await reports.resolve_report(
        ctx.session,
        ctx.broker,
        ctx.actor,
        report_id=report_id,
        action=body.action,
        duration_seconds=body.duration_seconds,
    )
    people = await _people(ctx.session, {report.reporter_id})
    return _report(report, await _chat_id(ctx.session, report), people.get(report.reporter_id or 0))


@router.get("/admin/audit")
async def audit_log(
    _me: AdminDep,
    session: SessionDep,
    before: OptionalId = None,
    limit: Limit = 50,
    actor: OptionalId = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditEntryPublic]:
    """Newest first; `before` is an entry id; filter by `actor` (a user id) and `action`."""
    entries = await list_audit(
        session, before=before, limit=min(limit, MAX_PAGE), actor_id=actor, action=action
    )
    people = await _people(session, {e.actor_id for e in entries})
    return [_entry(e, people) for e in entries]


def _entry(entry: AuditEntry, people: dict[int, SenderPublic]) -> AuditEntryPublic:
    actor = None
    if entry.actor_id is not None:
        name = entry.actor_name or str(entry.actor_id)
        gone = SenderPublic(id=entry.actor_id, username=name, display_name=name)
        actor = people.get(entry.actor_id, gone)
    return AuditEntryPublic(
        id=entry.id,
        at=entry.at,
        actor=actor,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        details=json.loads(entry.details or "{}"),
    )


def _report(
    report: Report, chat_id: int, reporter: SenderPublic | None, **extra: object
) -> ReportPublic:
    return ReportPublic(
        id=report.id,
        message_id=report.message_id,
        chat_id=chat_id,
        reason=report.reason,
        status=report.status,
        created_at=report.created_at,
        reporter=reporter,
        resolution=report.resolution,
        resolved_at=report.resolved_at,
        resolved_by=report.resolved_by,
        **extra,
    )


async def _chat_id(session: AsyncSession, report: Report) -> int:
    message = await session.get(Message, report.message_id)
    assert message is not None
    return message.chat_id


async def _people(session: AsyncSession, ids: set[int | None]) -> dict[int, SenderPublic]:
    return await senders_by_id(session, {i for i in ids if i is not None})
