"""History pages (`GET /chats/{id}/messages`): two queries per page, encoded once, and a
per-process memory of encoded pages kept exact by the chat events.

A page is the same for every reader with the same hidden senders (the users a reader
blocks are left out outside direct chats): nothing in it depends on who asks. So a page is
remembered as bytes under (chat, paging arguments, hidden senders) and served as is until
an event says the chat's messages may have changed:
- any `ChatFrame` of the chat except `typing` and `read` (a new message, an edit, a
  deletion, a reaction, attachments linked by a send: all published after their commit);
- `ChatRemoved`; `ProfileChanged` (a sender's name: every page is forgotten); `Resync`
  (a broker reconnect: events may have been lost, everything is forgotten).
Every process receives every event (Redis), so a change made through another process
reaches this one's memory too. A load that raced with an event is not stored (a
generation counter per chat). Who may read the chat and whom the reader blocks come from
the send path's caches (`SendChecks`), kept exact by the same events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    cast,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.server.cache import SendChecks
from parley.server.db.models import (
    Attachment,
    Message,
    MessageMention,
    Reaction,
    User,
    UTCDateTime,
)
from parley.server.messages.public import attachment_fields, row_fields, sender_fields
from parley.server.previews.stored import previews_of
from parley.server.realtime import events, frames

MAX_BYTES = 32 * 1024 * 1024  # of pages per process; past it the memory starts afresh
MAX_CHATS = 100_000  # chats with a generation counter; past it everything starts afresh
# Chat frames that change no stored message: they leave the chat's pages in place.
_UNCHANGING = frozenset({frames.Typing.kind, frames.Read.kind})

Mark = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Paging:
    """Which page of a chat's history: the newest `limit`, or just before/after/around a
    seq; `main_only`: the chat's main timeline (no thread replies but `also_in_chat` ones)."""

    limit: int
    before: int | None = None
    after: int | None = None
    offset: int = 0
    around: int | None = None
    main_only: bool = False

    def check(self) -> None:
        if self.around is not None and (
            self.before is not None or self.after is not None or self.offset
        ):
            raise errors.ValidationFailed("around: cannot be combined with before, after or offset")


PageKey = tuple[Paging, tuple[int, ...]]  # with the hidden senders


class HistoryPages:
    """Encoded history pages per chat, forgotten on the events that change them."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.pages: dict[int, dict[PageKey, bytes]] = {}
        self.size = 0  # bytes of pages kept
        self.generation = 0  # bumped when everything is forgotten
        self.chat_generations: dict[int, int] = {}
        self.hits = self.misses = 0

    def get(self, chat_id: int, key: PageKey) -> bytes | None:
        page = self.pages.get(chat_id)
        body = page.get(key) if page is not None else None
        if body is None:
            self.misses += 1
        else:
            self.hits += 1
        return body

    def mark(self, chat_id: int) -> Mark:
        """Taken before a load: `put` stores the page only if nothing changed meanwhile."""
        return self.generation, self.chat_generations.get(chat_id, 0)

    def put(self, chat_id: int, key: PageKey, body: bytes, mark: Mark) -> None:
        if mark != self.mark(chat_id):
            return
        page = self.pages.setdefault(chat_id, {})
        grows = len(body) - len(page.get(key, b""))
        if self.size + grows > self.max_bytes:
            self.clear()
            return
        self.size += grows
        page[key] = body

    def forget(self, chat_id: int) -> None:
        page = self.pages.pop(chat_id, None)
        if page is not None:
            self.size -= sum(len(body) for body in page.values())
        if len(self.chat_generations) >= MAX_CHATS:
            self.clear()
        else:
            self.chat_generations[chat_id] = self.chat_generations.get(chat_id, 0) + 1

    def clear(self) -> None:
        self.pages.clear()
        self.chat_generations.clear()
        self.size = 0
        self.generation += 1

    def on_event(self, event: events.Event) -> None:
        match event:
            case events.ChatFrame(chat_id=chat_id, kind=kind):
                if kind not in _UNCHANGING:
                    self.forget(chat_id)
            case events.ChatRemoved(chat_id=chat_id):
                self.forget(chat_id)
            case events.ProfileChanged() | events.Resync():
                self.clear()
            case _:
                return


async def history_page(
    pages: HistoryPages,
    checks: SendChecks,
    reads: async_sessionmaker[AsyncSession],
    *,
    user_id: int,
    chat_id: int,
    paging: Paging,
) -> bytes:
    """The JSON of `list_messages`' page, from memory when this page was served before."""
    paging.check()
    member = await checks.reader(user_id=user_id, chat_id=chat_id)
    direct = member is not None and member.chat_type == "direct"
    hidden = () if direct else await checks.hidden(user_id)
    key = (paging, hidden)
    body = pages.get(chat_id, key)
    if body is not None:
        return body
    mark = pages.mark(chat_id)
    async with reads() as session:
        rows = await load_page(session, chat_id=chat_id, hidden=hidden, paging=paging)
    body = encode_page(rows)
    pages.put(chat_id, key, body, mark)
    return body


def encode_page(rows: list[dict[str, Any]]) -> bytes:
    """The same bytes as pydantic's `list[MessagePublic]` JSON (tests compare them)."""
    return orjson.dumps(rows, option=orjson.OPT_UTC_Z)


# --- loading: the page with its senders, then its decorations ----------------------------

_PAGE_COLUMNS = (
    Message.id,
    Message.chat_id,
    Message.seq,
    Message.sender_id,
    Message.content,
    Message.created_at,
    Message.edited_at,
    Message.deleted_at,
    Message.client_id,
    Message.reply_to_id,
    Message.thread_root_id,
    Message.also_in_chat,
    Message.reply_count,
    Message.last_reply_at,
    Message.thread_participants,
    Message.kind,
    Message.pinned_at,
    Message.pinned_by,
    Message.forwarded_from,
    Message.notice,
    User.username,
    User.display_name,
)


def _visible(chat_id: int, hidden: tuple[int, ...], main_only: bool = False) -> Any:
    query = (
        select(*_PAGE_COLUMNS)
        .outerjoin(User, User.id == Message.sender_id)
        .where(Message.chat_id == chat_id)
    )
    if main_only:
        query = query.where(in_main_timeline())
    if hidden:
        query = query.where(Message.sender_id.not_in(hidden))
    return query


async def load_page(
    session: AsyncSession,
    *,
    chat_id: int,
    hidden: tuple[int, ...],
    paging: Paging,
) -> list[dict[str, Any]]:
    """A page in ascending seq as the public JSON shape (`MessagePublic`'s fields, in order).
    Two queries: the messages with their senders, then their reactions, attachments and
    mentions together."""
    limit, before, after, around = paging.limit, paging.before, paging.after, paging.around
    query = _visible(chat_id, hidden, paging.main_only)
    if around is not None:
        older = (
            await session.execute(
                query.where(Message.seq <= around).order_by(Message.seq.desc()).limit(limit)
            )
        ).all()
        newer = (
            await session.execute(
                query.where(Message.seq > around).order_by(Message.seq).limit(limit)
            )
        ).all()
        take_newer = min(len(newer), limit - min(len(older), (limit + 1) // 2))
        take_older = min(len(older), limit - take_newer)
        rows = list(older[:take_older][::-1]) + list(newer[:take_newer])
    else:
        rows = await seq_page(
            session, query, limit=limit, after=after, before=before, offset=paging.offset
        )
    return await _decorate(session, rows)


async def seq_page(
    session: AsyncSession,
    query: Select[Any],
    *,
    limit: int,
    after: int | None = None,
    before: int | None = None,
    offset: int = 0,
) -> list[Any]:
    """A page of `query`'s rows (of messages) in ascending seq: the first `limit` after
    `after`, else the last `limit` before `before` (or the newest), `offset` further back."""
    if after is not None:
        query = query.where(Message.seq > after).order_by(Message.seq).limit(limit)
        return list((await session.execute(query)).all())
    if before is not None:
        query = query.where(Message.seq < before)
    query = query.order_by(Message.seq.desc()).limit(limit).offset(offset)
    return list((await session.execute(query)).all())[::-1]


async def load_messages(session: AsyncSession, ids: list[int]) -> list[dict[str, Any]]:
    """Messages by id (as pages show them, in id order): a thread root after a reply."""
    query = (
        select(*_PAGE_COLUMNS)
        .outerjoin(User, User.id == Message.sender_id)
        .where(Message.id.in_(ids))
        .order_by(Message.id)
    )
    return await _decorate(session, list((await session.execute(query)).all()))


async def _decorate(session: AsyncSession, rows: list[Any]) -> list[dict[str, Any]]:
    live = [r.id for r in rows if r.deleted_at is None]
    named = [r.id for r in rows if r.deleted_at is None and "@" in r.content]
    reactions: dict[int, dict[str, list[int]]] = defaultdict(dict)
    attachments: dict[int, list[dict[str, Any]]] = defaultdict(list)
    mentions: dict[int, list[int]] = defaultdict(list)
    previews = await previews_of(session, live) if live else {}
    if live:
        found = sorted(
            (await session.execute(_decorations(live, named))).all(), key=_decoration_order
        )
        for kind, message_id, number, text, text2, size, _at in found:
            if kind == 0:
                reactions[message_id].setdefault(text, []).append(number)
            elif kind == 1:
                attachments[message_id].append(attachment_fields(number, text, text2, size))
            else:
                mentions[message_id].append(number)
    return [
        row_fields(
            r,
            sender=sender_fields(r.sender_id, r.username, r.display_name),
            attachments=attachments.get(r.id, ()),
            reactions=reactions.get(r.id, {}),
            mentions=mentions.get(r.id, ()),
            preview=previews.get(r.id),
        )
        for r in rows
    ]


def in_main_timeline() -> Any:
    """A message of the chat's main timeline: not a thread reply, or one also in the chat."""
    return or_(Message.thread_root_id.is_(None), Message.also_in_chat)


def _decoration_order(row: Any) -> tuple[Any, ...]:
    """Reactions by (created_at, user), attachments by id, mentions by user: as the
    separate queries of `messages_public` order them."""
    kind, message_id, number, _text, _text2, _size, at = row
    if kind == 0:
        return (0, at, number)
    return (kind, 0, number) if kind == 1 else (kind, message_id, number)


def _decorations(live: list[int], named: list[int]) -> Any:
    """One UNION ALL: (kind, message, number, text, text2, size, at) per reaction (0: user,
    emoji, created_at), attachment (1: id, filename, content type, size) and mention (2:
    user)."""
    text, big, at = String(), BigInteger(), UTCDateTime()
    parts: list[Any] = [
        select(
            literal(0, Integer()).label("kind"),
            Reaction.message_id,
            Reaction.user_id.label("number"),
            Reaction.emoji.label("text"),
            cast(null(), text).label("text2"),
            cast(null(), big).label("size"),
            Reaction.created_at.label("at"),
        ).where(Reaction.message_id.in_(live)),
        select(
            literal(1, Integer()),
            Attachment.message_id,
            Attachment.id,
            Attachment.filename,
            Attachment.content_type,
            Attachment.size,
            cast(null(), at),
        ).where(Attachment.message_id.in_(live)),
    ]
    if named:
        parts.append(
            select(
                literal(2, Integer()),
                MessageMention.message_id,
                MessageMention.user_id,
                cast(null(), text),
                cast(null(), text),
                cast(null(), big),
                cast(null(), at),
            ).where(MessageMention.message_id.in_(named))
        )
    return union_all(*parts)
