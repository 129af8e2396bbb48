"""Chat and membership shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from parley.server.accounts.schemas import Id, Strict, UserPublic
from parley.server.messages.schemas import MessagePublic
from parley.server.text import Description, DraftText, Name

Role = Literal["owner", "admin", "member"]
Notify = Literal["all", "mentions", "none"]
UserIds = Annotated[list[Id], Field(max_length=500)]


class DirectCreate(Strict):
    type: Literal["direct"]
    user_id: Id


class GroupCreate(Strict):
    type: Literal["group", "channel"]
    title: Name
    description: Description = ""
    member_ids: UserIds = Field(default_factory=list)


class ChatUpdate(Strict):
    title: Name | None = None
    description: Description | None = None
    # trust: days messages are kept (0: forever; null: the server's setting)
    retention_days: Annotated[float, Field(ge=0, le=36500, allow_inf_nan=False)] | None = None


class MembersAdd(Strict):
    user_ids: UserIds


class RoleUpdate(Strict):
    role: Role


def _text_only(value: object) -> object:
    """A time must be written as RFC 3339 text: a bare number is not a time here."""
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError('must be null, an RFC 3339 time with its offset, or "forever"')
    return value


MutedUntil = Annotated[AwareDatetime, BeforeValidator(_text_only)] | Literal["forever"] | None


class ChatSettings(Strict):
    """My own settings for a chat. `muted_until`: null unmutes; a past time unmutes too."""

    muted_until: MutedUntil = None
    # presence of mind: null goes back to the chat type's default
    notify: Notify | None = None


class DraftSet(Strict):
    """The composer's unsent text (≤ 4000 characters; empty clears it)."""

    content: DraftText


class DraftPublic(BaseModel):
    content: str
    updated_at: datetime


class ReadMarker(BaseModel):
    user_id: int
    seq: int


class ChatPublic(BaseModel):
    id: int
    type: str
    title: str
    description: str
    is_public: bool
    created_by: int | None
    created_at: datetime
    member_count: int
    last_seq: int
    unread_count: int
    read_seq: int
    last_message: MessagePublic | None
    my_role: Role | None
    peer: UserPublic | None
    mention_count: int
    muted_until: datetime | Literal["forever"] | None
    retention_days: float | None = None  # trust: null inherits PARLEY_RETENTION_DAYS
    notify: Notify = "all"  # presence of mind: for me (per viewer)
    draft: DraftPublic | None = None  # presence of mind: mine (per viewer)


class ChatDetail(ChatPublic):
    """One chat (`GET /chats/{id}`): with the other members' read markers (chats of at most
    100 members, and only between users who share read receipts)."""

    read_markers: list[ReadMarker] = Field(default_factory=list)


class MemberPublic(BaseModel):
    user: UserPublic
    role: Role
    joined_at: datetime
