"""Message shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from parley.server.accounts.schemas import Id, SenderPublic, Seq, Strict, Time
from parley.server.text import Content

ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Emoji = Annotated[str, StringConstraints(min_length=1, max_length=32)]
AttachmentIds = Annotated[list[Id], Field(max_length=10)]


class MessageCreate(Strict):
    content: Content
    client_id: ClientId | None = None
    reply_to: Id | None = None
    attachment_ids: AttachmentIds = Field(default_factory=list)
    # presence of mind: send later (a future time at most a year ahead) → 202 Scheduled
    send_at: Time | None = None


class ScheduledPublic(BaseModel):
    id: int
    chat_id: int
    content: str
    send_at: datetime


class ScheduledUpdate(Strict):
    content: Content | None = None
    send_at: Time | None = None


class MessageUpdate(Strict):
    content: Content


class ReactionCreate(Strict):
    emoji: Emoji


class ReadMark(Strict):
    seq: Seq


class AttachmentPublic(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    url: str


class ReactionPublic(BaseModel):
    emoji: str
    count: int
    user_ids: list[int]


class PreviewPublic(BaseModel):
    """A link preview: what the page of the message's first URL says about itself."""

    url: str
    title: str | None
    description: str | None
    site_name: str | None
    image: AttachmentPublic | None


class MessagePublic(BaseModel):
    id: int
    chat_id: int
    seq: int
    sender: SenderPublic | None
    content: str
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    client_id: str | None
    reply_to: int | None
    attachments: list[AttachmentPublic]
    reactions: list[ReactionPublic]
    mentions: list[int]
    preview: PreviewPublic | None = None


class ChatFilePublic(BaseModel):
    """An attachment of a chat's message, for the chat's files list."""

    attachment: AttachmentPublic
    message_id: int
    seq: int
    sender: SenderPublic | None
    created_at: datetime
