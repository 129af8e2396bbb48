"""Block and ban shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from parley.server.accounts.schemas import Id, Strict
from parley.server.text import Description

Duration = Annotated[int, Field(gt=0, le=10 * 365 * 24 * 3600)]


class BlockCreate(Strict):
    user_id: Id
    duration_seconds: Duration | None = None


class BlockPublic(BaseModel):
    user_id: int
    created_at: datetime
    expires_at: datetime | None


class BanCreate(Strict):
    user_id: Id
    duration_seconds: Duration | None = None
    reason: Description = ""


class BanPublic(BaseModel):
    user_id: int
    banned_by: int | None
    reason: str
    created_at: datetime
    expires_at: datetime | None
