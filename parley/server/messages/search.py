"""Full-text search over the messages of the caller's chats.

SQLite: the FTS5 table `messages_fts` (unicode61: case folded for Latin and Cyrillic alike),
ranked by bm25. PostgreSQL: the generated `messages.search_vector` ('simple' configuration,
GIN index), ranked by ts_rank scaled by length. Both take the user's words as plain terms,
never query syntax: every word must match, the last one as a prefix (search as you type).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, literal_column, or_, select, table, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import column

from parley import errors
from parley.server.db.models import Chat, Membership, Message
from parley.server.messages.schemas import MessagePublic
from parley.server.messages.service import messages_public
from parley.server.moderation.service import blocked_ids

MAX_RESULTS = 100
MAX_WORDS = 16
_WORD = re.compile(r"\w+")
_fts = table("messages_fts", column("rowid"))
_BY_LENGTH = 1  # ts_rank normalization: divide by 1 + log(length), as bm25 favours short texts
_search_vector = literal_column("messages.search_vector", TSVECTOR)


def words(q: str) -> list[str]:
    """The query's words (letters and digits of any script); punctuation is dropped."""
    return _WORD.findall(q)[:MAX_WORDS]


def fts5_query(terms: list[str]) -> str:
    """A MATCH expression where each word is a quoted string, the last one a prefix."""
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    quoted[-1] += "*"
    return " ".join(quoted)


def tsquery(terms: list[str]) -> str:
    """A to_tsquery expression: each word a quoted lexeme, AND-ed, the last one a prefix."""
    quoted = ["'" + term.replace("'", "''").replace("\\", "\\\\") + "'" for term in terms]
    quoted[-1] += ":*"
    return " & ".join(quoted)


async def search_messages(
    session: AsyncSession, *, user_id: int, q: str, chat_id: int | None, limit: int, now: datetime
) -> list[MessagePublic]:
    """Only chats the user is a member of; never deleted messages, nor (outside direct
    chats) those of users it blocks. Best match first, then newest."""
    if not q.strip():
        raise errors.ValidationFailed("q: must not be empty")
    terms = words(q)
    if not terms:
        return []
    query = await _scope(session, user_id=user_id, chat_id=chat_id, now=now)
    if session.get_bind().dialect.name == "sqlite":
        query = _match_sqlite(query, terms)
    else:
        query = _match_postgres(query, terms)
    rows = list((await session.execute(query.limit(limit))).scalars())
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


def _match_sqlite(query: Select[Message], terms: list[str]) -> Select[Message]:
    rank: ColumnElement[float] = func.bm25(literal_column("messages_fts"))
    return (
        query.join(_fts, _fts.c.rowid == Message.id)
        .where(text("messages_fts MATCH :match").bindparams(match=fts5_query(terms)))
        .order_by(rank, Message.created_at.desc(), Message.id.desc())
    )


def _match_postgres(query: Select[Message], terms: list[str]) -> Select[Message]:
    tsq = func.to_tsquery(literal_column("'simple'"), tsquery(terms))
    return query.where(_search_vector.op("@@")(tsq)).order_by(
        func.ts_rank(_search_vector, tsq, _BY_LENGTH).desc(),
        Message.created_at.desc(),
        Message.id.desc(),
    )
