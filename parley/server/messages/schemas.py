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


class SendFields(BaseModel):
    """What a sender writes: the same fields in the REST body and the `send` frame."""

    content: Content
    client_id: ClientId | None = None
    reply_to: Id | None = None
    attachment_ids: AttachmentIds = Field(default_factory=list)
    thread_root_id: Id | None = None
    also_in_chat: bool = False


class MessageCreate(Strict, SendFields):
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


class PinCreate(Strict):
    message_id: Id


class ForwardCreate(Strict):
    chat_ids: Annotated[list[Id], Field(min_length=1, max_length=10)]
    comment: Content | None = None


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


class ThreadSummary(BaseModel):
    """A root's thread: `participant_ids` are the last repliers, most recent first (5 at most)."""

    reply_count: int
    last_reply_at: datetime
    participant_ids: list[int]


class ForwardedFrom(BaseModel):
    """Where a forwarded message came from; `chat_id` only when that is a public channel."""

    message_id: int
    sender: SenderPublic | None
    created_at: datetime
    chat_id: int | None = None


class NoticePublic(BaseModel):
    """What a notice tells: `action` done by `actor_id` to `user_ids` (`title`: a new title)."""

    action: str
    actor_id: int | None
    user_ids: list[int]
    title: str | None = None


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
    thread_root_id: int | None = None
    also_in_chat: bool = False
    thread: ThreadSummary | None = None
    kind: str = "message"
    pinned_at: datetime | None = None
    pinned_by: int | None = None
    forwarded_from: ForwardedFrom | None = None
    notice: NoticePublic | None = None


class ChatFilePublic(BaseModel):
    """An attachment of a chat's message, for the chat's files list."""

    attachment: AttachmentPublic
    message_id: int
    seq: int
    sender: SenderPublic | None
    created_at: datetime


class ThreadPage(BaseModel):
    """A thread's root and a page of its replies, ascending."""

    root: MessagePublic
    replies: list[MessagePublic]


class FollowedThread(BaseModel):
    root: MessagePublic
    unread_count: int
    last_reply_at: datetime | None
