"""Administration shapes: what the admin routes accept and return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, StringConstraints

from parley.server.accounts.schemas import SenderPublic, Strict
from parley.server.messages.schemas import MessagePublic
from parley.server.moderation.schemas import Duration


class AdminUserUpdate(Strict):
    is_admin: bool


class ReportCreate(Strict):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ReportResolve(Strict):
    action: Literal["dismiss", "delete_message", "ban_user"]
    duration_seconds: Duration | None = None


class ReportPublic(BaseModel):
    id: int
    message_id: int
    chat_id: int
    reason: str
    status: Literal["open", "resolved"]
    created_at: datetime
    reporter: SenderPublic | None
    message: MessagePublic | None = None  # in the admins' queue
    resolution: str | None = None
    resolved_at: datetime | None = None
    resolved_by: int | None = None


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    actor: SenderPublic | None  # None for the system (e.g. an expiry)
    action: str
    target_type: str
    target_id: int | None
    details: dict[str, Any]
