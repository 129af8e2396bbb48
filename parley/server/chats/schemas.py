"""Chat and membership shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from parley.server.accounts.schemas import Id, Strict, UserPublic
from parley.server.messages.schemas import MessagePublic
from parley.server.text import Description, Name

Role = Literal["owner", "admin", "member"]
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


class MembersAdd(Strict):
    user_ids: UserIds


class RoleUpdate(Strict):
    role: Role


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
    last_message: MessagePublic | None
    my_role: Role | None
    peer: UserPublic | None


class MemberPublic(BaseModel):
    user: UserPublic
    role: Role
    joined_at: datetime
