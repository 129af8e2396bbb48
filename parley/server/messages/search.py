"""Search over the messages of the caller's chats, newest first.

A query is read by `parse`: words (all must match, each by its stem, so "running" finds
"run" and "написала" finds "написал"; the query's last word also as a prefix: search as
you type), `"exact phrase"` (its words' stems adjacent and in order), `-word` and
`-"phrase"` (left out), and the operators `from:username`, `in:CHAT_ID`, `has:file`,
`has:image`, `has:link`, `is:pinned`, `is:thread`, `mentions:me` (or a username),
`before:YYYY-MM-DD` and `after:YYYY-MM-DD` (UTC days, both exclusive). Several `from:` or
`in:` match any of them. Any other `name:value` is searched as words.

Words match `messages.search_text` (the stems of the content and the attachments' file
names: parley/server/messages/terms.py). SQLite: the FTS5 table `messages_fts` over it;
PostgreSQL: the generated `messages.search_vector` ('simple' configuration, GIN index) over
it. Terms always go in quoted, never as query syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    exists,
    false,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import column, func

from parley import errors
from parley.server.db.models import Attachment, Chat, Membership, Message, MessageMention, User
from parley.server.messages import terms
from parley.server.messages.schemas import MessagePublic
from parley.server.messages.service import messages_public
from parley.server.moderation.service import blocked_ids

MAX_RESULTS = 100
MAX_TERMS = 16
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_OPERATOR = re.compile(r"([A-Za-z]+):(\S+)")
_fts = table("messages_fts", column("rowid"))
_search_vector = literal_column("messages.search_vector", TSVECTOR)
_LINKS = ("%http://%", "%https://%")


@dataclass
class Query:
    """A parsed query. A term is a list of stems: one for a word, more for a phrase."""

    terms: list[list[str]] = field(default_factory=list)
    prefix: bool = False  # the last term is a word typed last: matched as a prefix too
    excluded: list[list[str]] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)  # username keys
    chats: list[int] = field(default_factory=list)
    has: set[str] = field(default_factory=set)  # file, image, link
    flags: set[str] = field(default_factory=set)  # pinned, thread
    mentions: list[str] = field(default_factory=list)  # "me" or username keys
    before: date | None = None
    after: date | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.terms or self.excluded or self.senders or self.chats or self.has
            or self.flags or self.mentions or self.before or self.after
        )  # fmt: skip


_VALUES = {"has": {"file", "image", "link"}, "is": {"pinned", "thread"}}


def parse(q: str) -> Query:
    """The query's terms and operators; a known operator with a bad value is a
    ValidationFailed naming it."""
    query = Query()
    for match in _TOKEN.finditer(q):
        negated, phrase, bare = match.groups()
        if phrase is not None:
            _add(query, terms.stems(phrase), negated=bool(negated), word=False)
            continue
        operator = _OPERATOR.fullmatch(bare)
        if operator and _operator(query, operator[1].lower(), operator[2]):
            query.prefix = False
            continue
        if bare.startswith("-") and len(bare) > 1:
            for stem in terms.stems(bare[1:]):
                _add(query, [stem], negated=True, word=False)
            continue
        for stem in terms.stems(bare):
            _add(query, [stem], negated=False, word=True)
    query.terms = query.terms[:MAX_TERMS]
    query.excluded = query.excluded[:MAX_TERMS]
    return query


def _add(query: Query, stems: list[str], *, negated: bool, word: bool) -> None:
    if not stems:
        return
    (query.excluded if negated else query.terms).append(stems)
    query.prefix = word


def _operator(query: Query, name: str, value: str) -> bool:
    """Applies `name:value` to the query; False when `name` is no operator."""
    if name == "from":
        query.senders.append(value.removeprefix("@").lower())
    elif name == "in":
        if not value.isdigit():
            raise errors.ValidationFailed(f"in:{value}: expected a chat id")
        query.chats.append(int(value))
    elif name in _VALUES:
        if value.lower() not in _VALUES[name]:
            known = ", ".join(f"{name}:{v}" for v in sorted(_VALUES[name]))
            raise errors.ValidationFailed(f"{name}:{value}: expected one of {known}")
        (query.has if name == "has" else query.flags).add(value.lower())
    elif name == "mentions":
        query.mentions.append(value.removeprefix("@").lower())
    elif name in ("before", "after"):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise errors.ValidationFailed(f"{name}:{value}: expected YYYY-MM-DD") from None
        setattr(query, name, day)
    else:
        return False
    return True


async def search_messages(
    session: AsyncSession,
    *,
    user_id: int,
    q: str,
    chat_id: int | None,
    before: int | None = None,
    limit: int,
    now: datetime,
) -> list[MessagePublic]:
    """Only chats the user is a member of; never deleted messages nor notices, nor (outside
    direct chats) those of users it blocks. Newest first; `before`: older than that message."""
    if not q.strip():
        raise errors.ValidationFailed("q: must not be empty")
    parsed = parse(q)
    if parsed.empty:
        return []
    query = await _scope(session, user_id=user_id, chat_id=chat_id, now=now)
    if before is not None:
        query = query.where(Message.id < before)
    query = query.where(Message.kind != "notice", *_filters(parsed, user_id=user_id))
    if session.get_bind().dialect.name == "sqlite":
        query = _match_sqlite(query, parsed)
    else:
        query = _match_postgres(query, parsed)
    query = query.order_by(Message.id.desc()).limit(limit)
    rows = list((await session.execute(query)).scalars())
    return await messages_public(session, rows)


async def _scope(
    session: AsyncSession, *, user_id: int, chat_id: int | None, now: datetime
) -> Select[Message]:
    query = (
        select(Message)
        .join(Membership, (Membership.chat_id == Message.chat_id) & (Membership.user_id == user_id))
        .join(Chat, Chat.id == Message.chat_id)
        .where(Message.deleted_at.is_(None))
    )
    if chat_id is not None:
        query = query.where(Message.chat_id == chat_id)
    hidden = await blocked_ids(session, user_id, now=now)
    if hidden:
        query = query.where(
            or_(
                Chat.type == "direct", Message.sender_id.is_(None), Message.sender_id.not_in(hidden)
            )
        )
    return query


def _filters(q: Query, *, user_id: int) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if q.senders:
        found.append(Message.sender_id.in_(select(User.id).where(User.username_key.in_(q.senders))))
    if q.chats:
        found.append(Message.chat_id.in_(q.chats))
    if "file" in q.has:
        found.append(exists().where(Attachment.message_id == Message.id))
    if "image" in q.has:
        found.append(exists().where(Attachment.message_id == Message.id, Attachment.is_image))
    if "link" in q.has:
        found.append(or_(*(Message.content.ilike(pattern) for pattern in _LINKS)))
    if "pinned" in q.flags:
        found.append(_pinned())
    if "thread" in q.flags:
        found.append(_in_thread())
    for name in q.mentions:
        named = MessageMention.message_id == Message.id
        if name == "me":
            found.append(exists().where(named, MessageMention.user_id == user_id))
        else:
            someone = select(User.id).where(User.username_key == name)
            found.append(exists().where(named, MessageMention.user_id.in_(someone)))
    if q.before is not None:
        found.append(Message.created_at < _day_start(q.before))
    if q.after is not None:
        found.append(Message.created_at >= _day_start(q.after + timedelta(days=1)))
    return found


def _pinned() -> ColumnElement[bool]:
    return Message.pinned_at.is_not(None)


# TODO(search-is-pinned-is-thread): threads are another feature's column
# (Message.thread_root_id), not on this branch's main yet. This matches it as soon as it
# exists; without it no message is in a thread.


def _in_thread() -> ColumnElement[bool]:
    """A reply in a thread, or a root with replies."""
    root: Any = getattr(Message, "thread_root_id", None)
    if root is None:
        return false()
    reply: Any = aliased(Message)
    return or_(root.is_not(None), exists().where(reply.thread_root_id == Message.id))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def fts5_query(phrases: list[list[str]], *, prefix: bool = False) -> str:
    """A MATCH expression: each term a quoted phrase, all of them required; `prefix`: the
    last one also as a prefix."""
    quoted = ['"' + " ".join(stems).replace('"', '""') + '"' for stems in phrases]
    if prefix:
        quoted[-1] += "*"
    return " ".join(quoted)


def tsquery(phrases: list[list[str]], *, prefix: bool = False, join: str = " & ") -> str:
    """A to_tsquery expression: each term quoted lexemes (`<->` in a phrase); `prefix`: the
    last one a prefix."""
    parts = [
        "(" + " <-> ".join("'" + s.replace("'", "''").replace("\\", "\\\\") + "'" for s in stems)
        for stems in phrases
    ]
    if prefix:
        parts[-1] += ":*"
    return join.join(part + ")" for part in parts)


def _match_sqlite(query: Select[Message], q: Query) -> Select[Message]:
    if q.terms:
        query = query.join(_fts, _fts.c.rowid == Message.id).where(
            text("messages_fts MATCH :match").bindparams(match=fts5_query(q.terms, prefix=q.prefix))
        )
    if q.excluded:
        out = " OR ".join(fts5_query([stems]) for stems in q.excluded)
        query = query.where(
            Message.id.not_in(
                select(_fts.c.rowid).where(text("messages_fts MATCH :out").bindparams(out=out))
            )
        )
    return query


def _match_postgres(query: Select[Message], q: Query) -> Select[Message]:
    if q.terms:
        tsq = func.to_tsquery(literal_column("'simple'"), tsquery(q.terms, prefix=q.prefix))
        query = query.where(_search_vector.op("@@")(tsq))
    if q.excluded:
        out = func.to_tsquery(literal_column("'simple'"), tsquery(q.excluded, join=" | "))
        query = query.where(~_search_vector.op("@@")(out))
    return query
