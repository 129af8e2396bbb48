"""`parley import-slack EXPORT.zip`: a Slack workspace export into this instance.

Slack's export is a ZIP of `users.json`, `channels.json` (public channels) and
`groups.json` (private ones, when exported), and one folder per channel named after it
holding a `YYYY-MM-DD.json` per day: messages `{type: "message", subtype?, user, text,
ts, thread_ts?, reactions?: [{name, users}], files?: [{id, name, mimetype}]}`.

- Users arrive without passwords (they set one through a reset link or an invite); one
  whose email is already here is that person. Bots and deleted users arrive the same way.
- Public channels become channels, private ones groups, each with its members.
- Direct messages (`dms.json`, a folder per DM named after its `D…` id) go into the pair's
  direct chat (the existing one, else a new one); group DMs (`mpims.json`, a folder per
  `mpdm-…` name) become private groups titled with their members' usernames.
- Messages keep their original times and order (seq), `<@U…>` becomes `@username` and
  `<#C…|name>` `#name`; joins, leaves and other notices (any `subtype` but `thread_broadcast`,
  `bot_message`, `file_share`, `me_message`) are not imported as messages. A thread reply
  becomes a reply to its thread's first message. Reactions whose name is known become
  emoji; files present in the archive (`<channel>/files/<id>/<name>` or
  `__uploads/<id>/<name>`) become attachments.
- Running it again imports nothing twice: users are found by email, channels by their
  Slack id (kept as the chat's slug; a DM by its pair), messages by their Slack timestamp
  (the client id).
"""

from __future__ import annotations

import json
import mimetypes
import re
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Attachment, Chat, Membership, Message, Reaction, User
from parley.server.integrations.bots import NO_PASSWORD
from parley.server.messages.thread_replies import record_reply
from parley.server.storage import Storage, new_key

Progress = Callable[[str, int, int], None]
KEPT_SUBTYPES = {None, "thread_broadcast", "bot_message", "file_share", "me_message"}
EMOJI = {
    "+1": "👍", "thumbsup": "👍", "-1": "👎", "thumbsdown": "👎", "heart": "❤️",
    "smile": "😄", "slightly_smiling_face": "🙂", "joy": "😂", "laughing": "😆",
    "tada": "🎉", "eyes": "👀", "fire": "🔥", "rocket": "🚀", "white_check_mark": "✅",
    "heavy_check_mark": "✔️", "x": "❌", "pray": "🙏", "clap": "👏", "ok_hand": "👌",
    "thinking_face": "🤔", "wave": "👋", "100": "💯", "raised_hands": "🙌", "muscle": "💪",
    "cry": "😢", "sob": "😭", "warning": "⚠️", "star": "⭐", "sunglasses": "😎",
}  # fmt: skip
_USER_REF = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL_REF = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")


def _username(raw: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)[:28] or "user"
    base = base.ljust(3, "_")
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base[:28]}_{n}"
    return name


def _time(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def _text(text: str, users: dict[str, str], channels: dict[str, str]) -> str:
    text = _USER_REF.sub(lambda m: "@" + users.get(m.group(1), m.group(1)), text)
    text = _CHANNEL_REF.sub(
        lambda m: "#" + (channels.get(m.group(1)) or m.group(2) or m.group(1)), text
    )
    text = _LINK.sub(lambda m: f"[{m.group(2)}]({m.group(1)})" if m.group(2) else m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def _json(archive: zipfile.ZipFile, name: str) -> list[Any]:
    try:
        data = json.loads(archive.read(name))
    except KeyError:
        return []
    return data if isinstance(data, list) else []


@dataclass(slots=True)
class _Import:
    """What every conversation's import reads, and the counts it adds to."""

    storage: Storage
    archive: zipfile.ZipFile
    names: set[str]
    ids: dict[str, int]  # Slack user id → Parley user id
    usernames: dict[str, str]  # Slack user id → Parley username
    channel_names: dict[str, str]
    added: dict[str, int]


async def import_slack(
    session: AsyncSession, storage: Storage, source: Path, progress: Progress | None = None
) -> dict[str, int]:
    """Commits per conversation; returns what was added."""
    added = {"users": 0, "chats": 0, "messages": 0, "reactions": 0, "files": 0}
    with zipfile.ZipFile(source) as archive:
        slack_users = _json(archive, "users.json")
        ids = await _import_users(session, slack_users, added)
        usernames = {}
        for sid, uid in ids.items():
            user = await session.get(User, uid)
            if user is not None:
                usernames[sid] = user.username
        channels = [(c, True) for c in _json(archive, "channels.json")]
        channels += [(c, False) for c in _json(archive, "groups.json")]
        channel_names = {c["id"]: c.get("name", c["id"]) for c, _ in channels}
        job = _Import(storage, archive, set(archive.namelist()), ids, usernames,
                      channel_names, added)  # fmt: skip
        dms, mpims = _json(archive, "dms.json"), _json(archive, "mpims.json")
        total = len(channels) + len(dms) + len(mpims)
        steps: list[Callable[[], Awaitable[None]]] = [
            partial(_import_channel, session, job, c, p) for c, p in channels
        ]
        steps += [partial(_import_dm, session, job, d) for d in dms]
        steps += [partial(_import_mpim, session, job, g) for g in mpims]
        for i, step in enumerate(steps, 1):
            await step()
            await session.commit()
            if progress:
                progress("chats", i, total)
    return added


async def _import_users(
    session: AsyncSession, slack_users: list[Any], added: dict[str, int]
) -> dict[str, int]:
    ids: dict[str, int] = {}
    for entry in slack_users:
        sid = entry.get("id")
        if not sid:
            continue
        profile = entry.get("profile") or {}
        email = (profile.get("email") or f"{sid.lower()}@slack.invalid").strip()
        existing = await session.scalar(select(User.id).where(User.email_key == email.lower()))
        if existing is not None:
            ids[sid] = int(existing)
            continue
        taken = set((await session.execute(select(User.username_key))).scalars())
        username = _username(entry.get("name") or sid, taken)
        display = (profile.get("display_name") or profile.get("real_name") or username)[:64]
        user = User(
            username=username,
            username_key=username.lower(),
            email=email,
            email_key=email.lower(),
            password_hash=NO_PASSWORD,  # a reset link or an invite sets one
            display_name=display.strip() or username,
            bio="",
            is_admin=False,
            is_bot=bool(entry.get("is_bot")),
        )
        session.add(user)
        await session.flush()
        ids[sid] = user.id
        added["users"] += 1
    await session.commit()
    return ids


async def _import_channel(
    session: AsyncSession, job: _Import, channel: dict[str, Any], public: bool
) -> None:
    """A public channel, or a private one (a group), with its members and messages."""
    slug = f"slack-{channel['id']}"[:64]
    chat = (await session.execute(select(Chat).where(Chat.slug == slug))).scalar_one_or_none()
    creator = job.ids.get(channel.get("creator", ""))
    if chat is None:
        chat = Chat(
            type="channel" if public else "group",
            title=(channel.get("name") or channel["id"])[:64],
            description=((channel.get("purpose") or {}).get("value") or "")[:500],
            is_public=public,
            slug=slug,
            created_by=creator,
            created_at=_time(str(channel.get("created", 0))),
            last_seq=0,
        )
        session.add(chat)
        await session.flush()
        job.added["chats"] += 1
    members = {job.ids[m] for m in channel.get("members") or [] if m in job.ids}
    await _add_members(session, chat, members, owner=creator)
    await _import_messages(session, job, chat, (channel.get("name") or channel["id"]) + "/")


async def _import_dm(session: AsyncSession, job: _Import, dm: dict[str, Any]) -> None:
    """A direct message (`dms.json`, its folder named after its id) into the pair's direct
    chat, the one Parley already has or a new one. A DM with oneself is skipped."""
    pair = sorted({job.ids[m] for m in dm.get("members") or [] if m in job.ids})
    if len(pair) != 2 or not dm.get("id"):
        return
    key = f"{pair[0]}:{pair[1]}"
    chat = (await session.execute(select(Chat).where(Chat.direct_key == key))).scalar_one_or_none()
    if chat is None:
        chat = Chat(type="direct", direct_key=key, created_by=pair[0], is_public=False,
                    created_at=_time(str(dm.get("created", 0))), last_seq=0)  # fmt: skip
        session.add(chat)
        await session.flush()
        job.added["chats"] += 1
    await _add_members(session, chat, set(pair), owner=None)
    await _import_messages(session, job, chat, f"{dm['id']}/")


async def _import_mpim(session: AsyncSession, job: _Import, mpim: dict[str, Any]) -> None:
    """A group DM (`mpims.json`, its folder named after its `mpdm-…` name) becomes a private
    group titled with its members' names, found again by its Slack id."""
    members = [job.ids[m] for m in mpim.get("members") or [] if m in job.ids]
    if not mpim.get("id") or not members:
        return
    slug = f"slack-{mpim['id']}"[:64]
    chat = (await session.execute(select(Chat).where(Chat.slug == slug))).scalar_one_or_none()
    creator = job.ids.get(mpim.get("creator", ""))
    if chat is None:
        names = [job.usernames[m] for m in mpim.get("members") or [] if m in job.usernames]
        chat = Chat(type="group", title=", ".join(names)[:64] or mpim["id"], is_public=False,
                    description=((mpim.get("purpose") or {}).get("value") or "")[:500],
                    slug=slug, created_by=creator,
                    created_at=_time(str(mpim.get("created", 0))), last_seq=0)  # fmt: skip
        session.add(chat)
        await session.flush()
        job.added["chats"] += 1
    await _add_members(session, chat, set(members), owner=creator or members[0])
    await _import_messages(session, job, chat, (mpim.get("name") or mpim["id"]) + "/")


async def _add_members(
    session: AsyncSession, chat: Chat, members: set[int], *, owner: int | None
) -> None:
    present = set(
        (
            await session.execute(select(Membership.user_id).where(Membership.chat_id == chat.id))
        ).scalars()
    )
    for uid in sorted(members - present):
        role = "owner" if uid == owner else "member"
        session.add(Membership(chat_id=chat.id, user_id=uid, role=role))


async def _import_messages(session: AsyncSession, job: _Import, chat: Chat, folder: str) -> None:
    """The folder's days, in time order; each message once (its Slack ts is its client id)."""
    archive, names, added, ids = job.archive, job.names, job.added, job.ids
    storage, usernames, channel_names = job.storage, job.usernames, job.channel_names
    days = sorted(n for n in names if n.startswith(folder) and n.endswith(".json"))
    messages = [m for day in days for m in _json(archive, day)]
    messages.sort(key=lambda m: float(m.get("ts", 0)))
    done = set(
        (
            await session.execute(
                select(Message.client_id, Message.id).where(
                    Message.chat_id == chat.id, Message.client_id.like("slack:%")
                )
            )
        ).all()
    )
    by_ts = {str(client_id).removeprefix("slack:"): mid for client_id, mid in done}
    seq = int(await session.scalar(select(func.coalesce(func.max(Message.seq), 0)).where(
        Message.chat_id == chat.id)) or 0)  # fmt: skip
    for m in messages:
        ts = str(m.get("ts", ""))
        if m.get("type") != "message" or m.get("subtype") not in KEPT_SUBTYPES or not ts:
            continue
        if ts in by_ts:
            continue
        sender = ids.get(m.get("user", ""))
        text = _text(m.get("text") or "", usernames, channel_names)
        files = [f for f in m.get("files") or [] if _file_in(names, f, folder)]
        if not text and not files:
            continue
        thread = str(m.get("thread_ts") or "")
        root_id = by_ts.get(thread) if thread and thread != ts else None
        seq += 1
        message = Message(
            chat_id=chat.id,
            seq=seq,
            sender_id=sender,
            content=text[:4000] or ", ".join(f.get("name", "file") for f in files),
            client_id=f"slack:{ts}",
            # a reply of an unknown sender cannot follow a thread: it quotes its root
            reply_to_id=root_id if sender is None else None,
            created_at=_time(ts),
        )
        session.add(message)
        await session.flush()
        by_ts[ts] = message.id
        if root_id is not None and sender is not None:  # a Slack thread: a Parley thread
            await record_reply(
                session, reply_id=message.id, seq=seq, sender_id=sender, root_id=root_id,
                also_in_chat=m.get("subtype") == "thread_broadcast", mentions=(), now=_time(ts),
            )  # fmt: skip
        added["messages"] += 1
        for reaction in m.get("reactions") or []:
            emoji = EMOJI.get(str(reaction.get("name", "")).split("::")[0])
            for su in reaction.get("users") or [] if emoji else []:
                if su in ids:
                    session.add(Reaction(message_id=message.id, user_id=ids[su], emoji=emoji))
                    added["reactions"] += 1
        for f in files:
            path = _file_in(names, f, folder)
            assert path is not None
            data = archive.read(path)
            key = new_key("attachments", _time(ts))
            await storage.save_bytes(key, data)
            kind = f.get("mimetype") or mimetypes.guess_type(path)[0] or "application/octet-stream"
            session.add(
                Attachment(
                    chat_id=chat.id,
                    uploader_id=sender,
                    message_id=message.id,
                    filename=(f.get("name") or Path(path).name)[:255],
                    content_type=kind[:100],
                    size=len(data),
                    is_image=kind.startswith("image/"),
                    storage_key=key,
                )
            )
            added["files"] += 1
    if seq > chat.last_seq:
        chat.last_seq = seq
        chat.last_activity_at = max(chat.last_activity_at, _time(str(messages[-1]["ts"])))


def _file_in(names: set[str], f: dict[str, Any], folder: str) -> str | None:
    """Where the archive holds a message's file, if it does."""
    fid, name = f.get("id", ""), f.get("name", "")
    for path in (f"{folder}files/{fid}/{name}", f"__uploads/{fid}/{name}"):
        if fid and name and path in names:
            return path
    return None
