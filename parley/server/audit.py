"""The audit log: one entry per administrative or moderating act, in the act's transaction.

`audit` adds the entry to the caller's session and never commits: the act's own commit
stores both or neither. Nothing in Parley deletes entries (tests/unit/test_audit_only_grows.py).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import AuditEntry, User


async def audit(
    session: AsyncSession,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: int | None,
    details: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditEntry:
    """Records `actor_id` doing `action` (e.g. "user.ban") to a target; flushed, not committed."""
    name: str | None = None
    if actor_id is not None:
        name = (await session.execute(select(User.username).where(User.id == actor_id))).scalar()
    entry = AuditEntry(
        actor_id=actor_id,
        actor_name=name or "",
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=json.dumps(details or {}, ensure_ascii=False, default=str),
    )
    if at is not None:
        entry.at = at
    session.add(entry)
    await session.flush()
    return entry


async def list_audit(
    session: AsyncSession,
    *,
    before: int | None,
    limit: int,
    actor_id: int | None = None,
    action: str | None = None,
) -> list[AuditEntry]:
    """Newest first; `before` is an entry id (the next page starts below it)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if action:
        query = query.where(AuditEntry.action == action)
    return list((await session.execute(query)).scalars())
