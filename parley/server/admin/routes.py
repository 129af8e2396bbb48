"""HTTP routes of the admin area (users, reports, audit log) and the report action."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
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
from parley.server.db.models import AuditEntry, Message, Report
from parley.server.deps import (
    AdminDep,
    CurrentUser,
    IdPath,
    Limit,
    Offset,
    OptionalId,
    SessionDep,
    StateDep,
)
from parley.server.messages.service import messages_public, senders_by_id
from parley.server.text import Plain

router = APIRouter(prefix="/service/api", tags=["admin"])


@router.get("/admin/users")
async def list_users(
    _me: AdminDep,
    session: SessionDep,
    state: StateDep,
    q: Annotated[Plain, Query(max_length=254)] = "",
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[UserPublic]:
    """With `email`, `two_factor` and `deactivated`; deactivated accounts included."""
    users = await service.list_users(session, q=q.strip(), limit=min(limit, 200), offset=offset)
    return [user_public(u, own=True, online=state.hub.is_online(u.id)) for u in users]


@router.post("/admin/users/{user_id}/deactivate", status_code=204)
async def deactivate(
    user_id: IdPath, me: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    await service.deactivate_user(
        session, state.broker, admin_id=me.id, user_id=user_id, now=state.clock()
    )
    return Response(status_code=204)


@router.post("/admin/users/{user_id}/reactivate", status_code=204)
async def reactivate(
    user_id: IdPath, me: AdminDep, session: SessionDep, state: StateDep
) -> Response:
    await service.reactivate_user(session, admin_id=me.id, user_id=user_id, now=state.clock())
    return Response(status_code=204)


@router.patch("/admin/users/{user_id}")
async def update_user(
    user_id: IdPath, body: AdminUserUpdate, me: AdminDep, session: SessionDep, state: StateDep
) -> UserPublic:
    user = await service.set_admin(
        session, admin_id=me.id, user_id=user_id, is_admin=body.is_admin, now=state.clock()
    )
    return user_public(user, own=True, online=state.hub.is_online(user.id))


@router.post("/admin/users/{user_id}/2fa/reset")
async def reset_two_factor(
    user_id: IdPath, me: AdminDep, session: SessionDep, state: StateDep
) -> UserPublic:
    user = await service.reset_two_factor(
        session, admin_id=me.id, user_id=user_id, now=state.clock()
    )
    return user_public(user, own=True, online=state.hub.is_online(user.id))


@router.post("/messages/{message_id}/report", status_code=201)
async def report_message(
    message_id: IdPath, body: ReportCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> ReportPublic:
    report = await reports.report_message(
        session, user_id=me.id, message_id=message_id, reason=body.reason, now=state.clock()
    )
    message = await session.get(Message, report.message_id)
    assert message is not None
    reporter = SenderPublic(id=me.id, username=me.user.username, display_name=me.user.display_name)
    return _report(report, message.chat_id, reporter)


@router.get("/admin/reports")
async def list_reports(
    _me: AdminDep,
    session: SessionDep,
    status: Literal["open", "resolved"] | None = None,
    before: OptionalId = None,
    limit: Limit = 50,
) -> list[ReportPublic]:
    """Newest first, each with its message."""
    rows = await reports.list_reports(session, status=status, limit=min(limit, 200), before=before)
    public = await messages_public(session, [m for _, m in rows])
    people = await _people(session, {r.reporter_id for r, _ in rows})
    return [
        _report(r, m.chat_id, people.get(r.reporter_id or 0), message=p)
        for (r, m), p in zip(rows, public, strict=True)
    ]


@router.post("/admin/reports/{report_id}/resolve")
async def resolve_report(
    report_id: IdPath, body: ReportResolve, me: AdminDep, session: SessionDep, state: StateDep
) -> ReportPublic:
    report = await reports.resolve_report(
        session,
        state.broker,
        admin_id=me.id,
        report_id=report_id,
        action=body.action,
        duration_seconds=body.duration_seconds,
        now=state.clock(),
    )
    message = await session.get(Message, report.message_id)
    assert message is not None
    people = await _people(session, {report.reporter_id})
    return _report(report, message.chat_id, people.get(report.reporter_id or 0))


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
        session, before=before, limit=min(limit, 200), actor_id=actor, action=action
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


async def _people(session: AsyncSession, ids: set[int | None]) -> dict[int, SenderPublic]:
    return await senders_by_id(session, {i for i in ids if i is not None})
