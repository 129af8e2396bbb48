"""Invitation shapes: what the API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field

from parley.server.accounts.schemas import Id, Strict

WEEK = 7 * 24 * 3600
YEAR = 365 * 24 * 3600
Uses = Annotated[int, Field(ge=1, le=100_000)]
Lifetime = Annotated[int, Field(ge=60, le=YEAR)]


class AdminInviteCreate(Strict):
    email: EmailStr | None = None
    max_uses: Uses = 1
    expires_in_seconds: Lifetime = WEEK
    chat_ids: Annotated[list[Id], Field(max_length=50)] = Field(default_factory=list)


class ChatLinkPublic(BaseModel):
    code: str
    url: str
    expires_at: datetime | None
    uses_left: int | None


class AdminInvitePublic(ChatLinkPublic):
    email: str | None
    chat_ids: list[int]
    created_at: datetime


class ChatLinkCreate(Strict):
    expires_in_seconds: Lifetime | None = None  # None: until revoked or replaced
    max_uses: Uses | None = None  # None: unlimited


class InviteChat(BaseModel):
    title: str
    type: str
    member_count: int


class InvitePreview(BaseModel):
    chat: InviteChat | None
    valid: bool
