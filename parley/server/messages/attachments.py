"""Attachments: files uploaded to a chat, stored by server-made keys, served to its members.

The content type is what the server detects (decoding for images, magic bytes for the
rest), never what the client says; only a file that decodes as an image is `is_image`,
which is what allows it to be shown inline.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server import images
from parley.server.chats.access import access_member, get_membership
from parley.server.db.models import Attachment, MessagePreview
from parley.server.messages.service import access_message
from parley.server.storage import Storage, new_key
from parley.server.uploads import FilePart

HEAD_BYTES = 8 * 1024


class _Head:
    """Passes chunks through while keeping the first HEAD_BYTES for type detection."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks = chunks
        self.data = b""

    async def stream(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            if len(self.data) < HEAD_BYTES:
                self.data += chunk[: HEAD_BYTES - len(self.data)]
            yield chunk


async def check_can_upload(session: AsyncSession, *, user_id: int, chat_id: int, quota: int) -> int:
    """Members only (NotFound / NotMember) with room in their quota (QuotaExceeded); the
    bytes left. Ends the transaction, so that no connection (nor SQLite's write lock) is
    held while the body streams in."""
    await access_member(session, user_id=user_id, chat_id=chat_id)
    used = await session.scalar(
        select(func.coalesce(func.sum(Attachment.size), 0)).where(Attachment.uploader_id == user_id)
    )
    await session.commit()
    room = quota - int(used or 0)
    if room <= 0:
        raise errors.QuotaExceeded()
    return room


async def upload_attachment(
    session: AsyncSession,
    storage: Storage,
    *,
    user_id: int,
    chat_id: int,
    part: FilePart,
    room: int,
    max_bytes: int,
    now: datetime,
) -> Attachment:
    """Streams the file into storage (TooLarge past `max_bytes`, the per-file limit;
    QuotaExceeded past the `room` left in the user's quota), detects its type, then
    records it unlinked: sending a message with its id links it. Call check_can_upload
    before reading the body; membership is checked again before the row is written."""
    key = new_key("attachments", now)
    head = _Head(part.chunks)
    try:
        size = await storage.save(key, head.stream(), max_bytes=min(max_bytes, room))
    except errors.TooLarge:
        if room < max_bytes:
            raise errors.QuotaExceeded() from None
        raise
    try:
        content_type, is_image = await _classify(storage, key, head.data, part.filename)
        await access_member(session, user_id=user_id, chat_id=chat_id)
        attachment = Attachment(
            chat_id=chat_id,
            uploader_id=user_id,
            filename=images.safe_filename(part.filename),
            content_type=content_type,
            size=size,
            is_image=is_image,
            storage_key=key,
        )
        session.add(attachment)
        await session.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            await storage.delete(key)
        raise
    return attachment


async def _classify(storage: Storage, key: str, head: bytes, filename: str) -> tuple[str, bool]:
    """(content type, is_image). Something that looks like an image but does not decode
    is served as opaque bytes."""
    detected = images.detect_content_type(head, filename)
    if not detected.startswith("image/"):
        return detected, False
    info = await images.sniff(await storage.read_bytes(key))
    if info is None:
        return images.OCTET_STREAM, False
    return info.content_type, True


async def delete_orphans(
    session: AsyncSession, storage: Storage, *, older_than: datetime, batch: int = 500
) -> int:
    """Deletes uploads never attached to a message and created before `older_than`:
    rows first (committed), then their files. How many went."""
    rows = (
        await session.execute(
            delete(Attachment)
            .where(
                Attachment.id.in_(
                    select(Attachment.id)
                    .where(
                        Attachment.message_id.is_(None),
                        Attachment.created_at < older_than,
                        ~exists().where(MessagePreview.image_id == Attachment.id),
                    )
                    .limit(batch)
                )
            )
            .returning(Attachment.storage_key)
        )
    ).scalars()
    keys = list(rows)
    await session.commit()
    for key in keys:
        with contextlib.suppress(errors.ParleyError, OSError):  # an orphan file is harmless
            await storage.delete(key)
    return len(keys)


async def access_attachment(
    session: AsyncSession, *, user_id: int, attachment_id: int, now: datetime
) -> Attachment:
    """An attachment the user may download: its chat's members see it once it is sent
    (not when its message was deleted or its sender is blocked in a group); before that,
    only its uploader. NotFound otherwise, so nothing leaks."""
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None or not await _may_see(session, attachment, user_id, now):
        raise errors.NotFound("No such attachment", code="attachment_not_found")
    return attachment


async def _may_see(
    session: AsyncSession, attachment: Attachment, user_id: int, now: datetime
) -> bool:
    if await get_membership(session, attachment.chat_id, user_id) is None:
        return False
    message_id = attachment.message_id
    if message_id is None:  # an upload not sent yet, or a link preview's image
        message_id = await session.scalar(
            select(MessagePreview.message_id).where(MessagePreview.image_id == attachment.id)
        )
        if message_id is None:
            return attachment.uploader_id == user_id
    try:
        message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    except errors.NotFound:
        return False
    return message.deleted_at is None


async def open_attachment(
    session: AsyncSession, storage: Storage, *, user_id: int, attachment_id: int, now: datetime
) -> tuple[Attachment, AsyncIterator[bytes]]:
    attachment = await access_attachment(
        session, user_id=user_id, attachment_id=attachment_id, now=now
    )
    return attachment, await storage.open(attachment.storage_key)


def download_headers(attachment: Attachment) -> dict[str, str]:
    """Inline only for decoded images; anything else downloads, sandboxed if opened."""
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
    if attachment.is_image:
        headers["Content-Disposition"] = images.content_disposition("inline", attachment.filename)
    else:
        headers["Content-Disposition"] = images.content_disposition(
            "attachment", attachment.filename
        )
        headers["Content-Security-Policy"] = "sandbox"
    headers["Content-Length"] = str(attachment.size)
    return headers
