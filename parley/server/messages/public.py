"""The public shape of a message: one builder from a stored message (and its decorations)
to what every path shows (history, send, resend, sync, search, mentions).

`public_fields` holds the rules (a deleted message shows no content, attachments,
reactions or mentions) and returns the JSON shape, in `MessagePublic`'s field order:
history pages encode it as it is (orjson), the other paths validate it into a
`MessagePublic`. Both give the same bytes (tests compare them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, Unpack

from parley.server.accounts.schemas import SenderPublic
from parley.server.messages.schemas import AttachmentPublic, MessagePublic

Sender = SenderPublic | Mapping[str, Any] | None
Reactions = Mapping[str, Sequence[int]]  # emoji -> user ids, both in the order shown


# The columns of a message's row that `public_fields` takes under the same name; the rest
# it reads by hand: reply_to_id, the thread summary's columns, and `extra_fields`.
_SAME_NAMED = (
    "id",
    "chat_id",
    "seq",
    "content",
    "created_at",
    "edited_at",
    "deleted_at",
    "client_id",
    "thread_root_id",
    "also_in_chat",
)


_NO_REACTIONS: Reactions = {}


def public_fields(
    *,
    id: int,
    chat_id: int,
    seq: int,
    sender: Sender,
    content: str,
    created_at: datetime,
    edited_at: datetime | None,
    deleted_at: datetime | None,
    client_id: str | None,
    reply_to: int | None,
    attachments: Sequence[Any] = (),
    reactions: Reactions = _NO_REACTIONS,
    mentions: Sequence[int] = (),
    preview: Mapping[str, Any] | None = None,
    thread_root_id: int | None = None,
    also_in_chat: bool = False,
    thread: Mapping[str, Any] | None = None,
    kind: str = "message",
    pinned_at: datetime | None = None,
    pinned_by: int | None = None,
    forwarded_from: Mapping[str, Any] | None = None,
    notice: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The one place the public message is made: `MessagePublic`'s fields, in order."""
    deleted = deleted_at is not None
    return {
        "id": id,
        "chat_id": chat_id,
        "seq": seq,
        "sender": sender,
        "content": "" if deleted else content,
        "created_at": created_at,
        "edited_at": edited_at,
        "deleted": deleted,
        "client_id": client_id,
        "reply_to": reply_to,
        "attachments": [] if deleted else list(attachments),
        "reactions": []
        if deleted
        else [
            {"emoji": emoji, "count": len(users), "user_ids": list(users)}
            for emoji, users in reactions.items()
        ],
        "mentions": [] if deleted else list(mentions),
        "preview": None if deleted else preview,
        "thread_root_id": thread_root_id,
        "also_in_chat": also_in_chat,
        "thread": thread,
        "kind": kind,
        "pinned_at": pinned_at,
        "pinned_by": pinned_by if pinned_at is not None else None,
        "forwarded_from": None if deleted else forwarded_from,
        "notice": notice,
    }


class Decorations(TypedDict, total=False):
    """What a message's row is shown with, read from other tables (none when left out)."""

    attachments: Sequence[Any]
    reactions: Reactions
    mentions: Sequence[int]
    preview: Mapping[str, Any] | None


def row_fields(row: Any, *, sender: Sender, **decorations: Unpack[Decorations]) -> dict[str, Any]:
    """`public_fields` of a stored message's row: the ORM object, a result row or a record
    read as one."""
    return public_fields(
        **{name: getattr(row, name) for name in _SAME_NAMED},
        sender=sender,
        reply_to=row.reply_to_id,
        thread=thread_fields(row.reply_count, row.last_reply_at, row.thread_participants),
        **decorations,
        **extra_fields(row),
    )


def extra_fields(row: Any) -> dict[str, Any]:
    """Kind, pin, forwarding and notice of a stored row (the JSON columns decoded); the
    defaults for a row read without those columns."""
    forwarded = getattr(row, "forwarded_from", None)
    notice = getattr(row, "notice", None)
    return {
        "kind": getattr(row, "kind", None) or "message",
        "pinned_at": getattr(row, "pinned_at", None),
        "pinned_by": getattr(row, "pinned_by", None),
        "forwarded_from": json.loads(forwarded) if forwarded else None,
        "notice": json.loads(notice) if notice else None,
    }


def thread_fields(
    reply_count: int, last_reply_at: datetime | None, participants: str
) -> dict[str, Any] | None:
    """A root's `thread` summary from its row's columns (None before its first reply)."""
    if not reply_count or last_reply_at is None:
        return None
    return {
        "reply_count": reply_count,
        "last_reply_at": last_reply_at,
        "participant_ids": participant_ids(participants),
    }


def participant_ids(stored: str) -> list[int]:
    return [int(p) for p in stored.split(",") if p]


def as_public(fields: Mapping[str, Any]) -> MessagePublic:
    return MessagePublic.model_validate(fields)


def sender_fields(
    sender_id: int | None, username: str | None, display_name: str | None
) -> dict[str, Any] | None:
    """The sender as a row of the message joined to its user shows it (none when gone)."""
    if not sender_id or username is None:
        return None
    return {"id": sender_id, "username": username, "display_name": display_name}


def attachment_fields(id: int, filename: str, content_type: str, size: int) -> dict[str, Any]:
    return {
        "id": id,
        "filename": filename,
        "content_type": content_type,
        "size": size,
        "url": f"/service/api/attachments/{id}",
    }


def attachment_public(a: Any) -> AttachmentPublic:
    """An `Attachment` row as the API shows it."""
    return AttachmentPublic.model_validate(
        attachment_fields(a.id, a.filename, a.content_type, a.size)
    )
