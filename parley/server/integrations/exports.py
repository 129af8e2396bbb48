"""Exports as ZIP: a person's (`profile.json`, `chats.json`, `messages/<chat_id>.json`
with their own messages in every chat and every message of their direct chats, `files/`
with those messages' attachments) or a whole chat's (its managers'). Built in the
background in a temporary file of the data dir, one at a time per user, kept EXPIRY_DAYS days
(then the worker deletes the row and the file: the export answers 404)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import tempfile
import zipfile
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.config import make_private_dir
from parley.server.accounts.service import user_public
from parley.server.chats.access import access_manager
from parley.server.db.models import Attachment, Chat, DataExport, Membership, Message, User
from parley.server.messages.schemas import MessagePublic
from parley.server.messages.service import messages_public
from parley.server.storage import Storage, new_key

log = logging.getLogger("parley.exports")
EXPIRY_DAYS = 7
PAGE = 2000  # messages read at a time
CHUNK = 256 * 1024


class NotReady(errors.Conflict, code="export_not_ready", detail="The export is not ready"): ...


class ExportJobs:
    """The background builds of this process."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job, name="export")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def export_public(row: DataExport) -> dict[str, Any]:
    body: dict[str, Any] = {"id": row.id, "status": row.status, "chat_id": row.chat_id}
    if row.status == "ready":
        body |= {"url": f"/service/api/export/{row.id}/download", "size": row.size}
        body["expires_at"] = row.expires_at.isoformat()
    return body


async def start_export(
    session: AsyncSession, *, user_id: int, chat_id: int | None, now: datetime
) -> DataExport:
    """409 `export_in_progress` while another of the user's is pending. Commits."""
    if chat_id is not None:
        await access_manager(session, user_id=user_id, chat_id=chat_id)
    pending = await session.scalar(
        select(DataExport.id).where(DataExport.user_id == user_id, DataExport.status == "pending")
    )
    if pending is not None:
        raise errors.Conflict("An export is already being prepared", code="export_in_progress")
    row = DataExport(
        user_id=user_id,
        chat_id=chat_id,
        status="pending",
        created_at=now,
        expires_at=now + timedelta(days=EXPIRY_DAYS),
    )
    session.add(row)
    await session.commit()
    return row


async def get_export(
    session: AsyncSession, *, user_id: int, export_id: int, now: datetime
) -> DataExport:
    row = await session.get(DataExport, export_id)
    if row is None or row.user_id != user_id or row.expires_at <= now:
        raise errors.NotFound("No such export", code="export_not_found")
    return row


def _message_json(m: MessagePublic) -> dict[str, Any]:
    data = m.model_dump(mode="json", exclude={"client_id"})
    for a in data["attachments"]:
        a["path"] = _file_path(a["id"], a["filename"])
    return data


def _file_path(attachment_id: int, filename: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename)[-100:] or "file"
    return f"files/{attachment_id}-{safe}"


async def build_export(
    sessions: async_sessionmaker[AsyncSession],
    storage: Storage,
    *,
    export_id: int,
    now: datetime,
    scratch: Path,
) -> None:
    """Builds the ZIP in a temporary file under `scratch` (the data dir: never the whole
    archive in memory), stores it and marks the export ready (failed on any error)."""
    try:
        await asyncio.to_thread(make_private_dir, scratch)
        file = await asyncio.to_thread(_scratch_file, scratch)
        with file:
            archive = zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED)
            files = await _write_records(sessions, archive, export_id)
            if files is None:
                return
            for path, key in files.items():
                await _copy_file(archive, storage, path, key)
            await asyncio.to_thread(archive.close)
            size = file.tell()
            file.seek(0)
            key = new_key("exports", now)
            await storage.save(key, _chunks(file), max_bytes=size)
        async with sessions() as session:
            row = await session.get(DataExport, export_id)
            if row is not None:
                row.status, row.storage_key, row.size = "ready", key, size
                await session.commit()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("export %d failed", export_id, exc_info=True)
        async with sessions() as session:
            row = await session.get(DataExport, export_id)
            if row is not None:
                row.status = "failed"
                await session.commit()


async def _write_records(
    sessions: async_sessionmaker[AsyncSession], archive: zipfile.ZipFile, export_id: int
) -> dict[str, str] | None:
    """Writes the JSON files, a chat at a time; the attachments to add (path in the ZIP →
    storage key), None when the export is gone."""
    files: dict[str, str] = {}
    async with sessions() as session:
        row = await session.get(DataExport, export_id)
        if row is None:
            return None
        user = await session.get(User, row.user_id)
        assert user is not None
        if row.chat_id is None:
            profile = user_public(user, own=True).model_dump(mode="json")
            await _write(archive, "profile.json", _dumps(profile))
            chats = await _chats_of(session, user.id)
        else:
            chat = await session.get(Chat, row.chat_id)
            chats = [] if chat is None else [(chat, None)]
        await _write(archive, "chats.json", _dumps([_chat_json(c, r) for c, r in chats]))
        for chat, _role in chats:
            query = select(Message).where(Message.chat_id == chat.id).order_by(Message.seq)
            if row.chat_id is None and chat.type != "direct":
                query = query.where(Message.sender_id == user.id)
            messages = await _all(session, query)
            data = _dumps([_message_json(m) for m in messages])
            await _write(archive, f"messages/{chat.id}.json", data)
            for m in messages:
                for a in m.attachments:
                    files[_file_path(a.id, a.filename)] = await _key(session, a.id)
    return files


def _chat_json(chat: Chat, role: str | None) -> dict[str, Any]:
    return {
        "id": chat.id,
        "type": chat.type,
        "title": chat.title,
        "description": chat.description,
        "created_at": chat.created_at.isoformat(),
        **({"my_role": role} if role else {}),
    }


async def _chats_of(session: AsyncSession, user_id: int) -> list[tuple[Chat, str | None]]:
    rows = await session.execute(
        select(Chat, Membership.role)
        .join(Membership, Membership.chat_id == Chat.id)
        .where(Membership.user_id == user_id)
        .order_by(Chat.id)
    )
    return [(chat, role) for chat, role in rows.tuples()]


async def _all(session: AsyncSession, query: Any) -> list[MessagePublic]:
    found: list[MessagePublic] = []
    offset = 0
    while True:
        page: Sequence[Message] = list(
            (await session.execute(query.limit(PAGE).offset(offset))).scalars()
        )
        found += await messages_public(session, page)
        if len(page) < PAGE:
            return found
        offset += PAGE


async def _key(session: AsyncSession, attachment_id: int) -> str:
    key = await session.scalar(select(Attachment.storage_key).where(Attachment.id == attachment_id))
    return str(key)


async def _write(archive: zipfile.ZipFile, path: str, data: bytes) -> None:
    await asyncio.to_thread(archive.writestr, path, data)


async def _copy_file(archive: zipfile.ZipFile, storage: Storage, path: str, key: str) -> None:
    """Streams one stored file into the archive, a chunk at a time."""
    try:
        chunks = await storage.open(key)
    except Exception:  # a file gone from the store: the export goes on without it
        log.info("export: %s is missing from the store", key)
        return
    target = await asyncio.to_thread(archive.open, path, "w", force_zip64=True)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(target.write, chunk)
    finally:
        await asyncio.to_thread(target.close)


def _scratch_file(scratch: Path) -> IO[bytes]:
    """Gone from the directory at once: nothing is left behind, even after a crash."""
    return tempfile.TemporaryFile("w+b", dir=scratch)


async def _chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, CHUNK):
        yield chunk


async def delete_expired(session: AsyncSession, storage: Storage, *, now: datetime) -> int:
    """Deletes the exports past `expires_at`: the row (committed), then its file. How many."""
    rows = list(
        (await session.execute(select(DataExport).where(DataExport.expires_at <= now))).scalars()
    )
    keys = [r.storage_key for r in rows if r.storage_key]
    for row in rows:
        await session.delete(row)
    await session.commit()
    for key in keys:
        with contextlib.suppress(Exception):  # already gone: nothing left to free
            await storage.delete(key)
    return len(rows)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()
