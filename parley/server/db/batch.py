"""The writer's batch on each database: its SQL and the driver calls that run it.

`store_postgresql` and `store_sqlite` store a batch of new messages (the writer's
`Draft`s, or anything shaped as `NewMessage`) with their mentions, each chat's next seqs
and the senders' read markers, none of it per message: one statement on PostgreSQL (run
on asyncpg itself on the writer's autocommit connection), a few on SQLite (run in the
aiosqlite connection's thread in one hand-off: `run_in_sqlite_thread`, the one use of
aiosqlite's private API). Each returns, by position in the batch, the new messages' (id,
seq) and the stored message of each resend (a (sender, client_id) stored already); a
position in neither is a message whose chat is gone.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from parley.server.db.models import UTCDateTime
from parley.server.db.session import fetch_on_driver
from parley.server.messages import terms

T = TypeVar("T")


class Written(Protocol):
    """A new message as its sender wrote it (the writer's `Draft`)."""

    @property
    def chat_id(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def content(self) -> str: ...


class NewMessage(Written, Protocol):
    """What a batch stores of one send."""

    @property
    def client_id(self) -> str | None: ...
    @property
    def reply_to(self) -> int | None: ...


Mentions = Mapping[Any, Sequence[int]]  # a batch's row -> the user ids it mentions


@dataclass(slots=True)
class StoredRow:
    """A resend's stored message, as history shows it (times in UTC, JSON decoded)."""

    id: int
    chat_id: int  # its own chat (a client_id reused in another chat is refused on it)
    seq: int
    content: str
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    reply_to_id: int | None
    username: str | None
    display_name: str | None
    mentions: list[int]
    reactions: list[list[Any]]  # [emoji, user id], in the order shown
    attachments: list[list[Any]]  # [id, filename, content type, size], by id


Stored = tuple[dict[int, tuple[int, int]], dict[int, StoredRow]]


async def store(
    conn: AsyncConnection,
    rows: Sequence[NewMessage],
    mentions: Mentions,
    now: datetime,
) -> Stored:
    """The batch in the transaction the connection's session began (not committed)."""
    if conn.dialect.name == "postgresql":
        return await store_postgresql(conn, rows, mentions, now)
    return await store_sqlite(conn, rows, mentions, now)


# One statement for the whole batch on PostgreSQL. Every CTE sees the snapshot the statement
# started with, and no row is modified twice:
# - `resent`: drafts whose (sender, client_id) is stored already; they insert nothing;
# - `locked`: the chats of the new messages, row-locked in id order (writers of several
#   processes take them in one order: no deadlock); a chat deleted meanwhile is missing;
# - `bumped`: each chat's last_seq moved by its count of new messages, RETURNING the new
#   value (under the lock, the newest committed one); `numbered` numbers the messages from
#   it in batch order (row_number per chat): seq stays gap-free;
# - `inserted`, `marked` (the senders' read markers: the last seq each wrote) and `mentioned`;
# - the result: per draft its position (`ord`), id and seq, and a resend's stored message.
# A (sender, client_id) committed by another process after the snapshot makes the INSERT
# fail on the unique constraint: the writer rolls back and tries again, and `resent` then
# finds it.
_PG_BATCH = text(
    """WITH input AS (
    SELECT * FROM unnest(
        CAST(:ord AS int[]), CAST(:chat_id AS bigint[]), CAST(:sender_id AS bigint[]),
        CAST(:content AS text[]), CAST(:client_id AS text[]), CAST(:reply_to AS bigint[]),
        CAST(:search_text AS text[])
    ) AS t(ord, chat_id, sender_id, content, client_id, reply_to_id, search_text)
), resent AS (
    SELECT i.ord, m.id FROM input i
    JOIN messages m ON m.sender_id = i.sender_id AND m.client_id = i.client_id
), fresh AS (
    SELECT i.*, row_number() OVER (PARTITION BY i.chat_id ORDER BY i.ord) AS n,
        count(*) OVER (PARTITION BY i.chat_id) AS total
    FROM input i WHERE i.ord NOT IN (SELECT ord FROM resent)
), locked AS MATERIALIZED (
    SELECT c.id FROM chats c WHERE c.id IN (SELECT chat_id FROM fresh) ORDER BY c.id FOR UPDATE
), bumped AS (
    UPDATE chats c SET last_seq = c.last_seq + k.total, last_activity_at = :now
    FROM (SELECT chat_id, count(*) AS total FROM fresh GROUP BY chat_id) k
    WHERE c.id = k.chat_id AND c.id IN (SELECT id FROM locked)
    RETURNING c.id, c.last_seq
), numbered AS (
    SELECT f.*, b.last_seq - f.total + f.n AS seq FROM fresh f JOIN bumped b ON b.id = f.chat_id
), inserted AS (
    INSERT INTO messages (chat_id, seq, sender_id, content, client_id, reply_to_id, created_at,
        search_text)
    SELECT chat_id, seq, sender_id, content, client_id, reply_to_id, :now, search_text
    FROM numbered ORDER BY ord
    RETURNING id, chat_id, seq
), marked AS (
    UPDATE memberships ms SET last_read_seq = r.seq
    FROM (SELECT chat_id, sender_id, max(seq) AS seq FROM numbered GROUP BY 1, 2) r
    WHERE ms.chat_id = r.chat_id AND ms.user_id = r.sender_id
), mentioned AS (
    INSERT INTO message_mentions (message_id, user_id, chat_id, seq)
    SELECT i.id, mn.user_id, i.chat_id, i.seq
    FROM unnest(CAST(:mention_ord AS int[]), CAST(:mention_user AS bigint[])) AS mn(ord, user_id)
    JOIN numbered n ON n.ord = mn.ord
    JOIN inserted i ON i.chat_id = n.chat_id AND i.seq = n.seq
)
SELECT n.ord, i.id, i.chat_id, i.seq, NULL AS content, NULL AS created_at,
    NULL AS edited_at, NULL AS deleted_at, NULL AS reply_to_id, NULL AS username,
    NULL AS display_name, NULL AS mentions, NULL AS reactions, NULL AS attachments
FROM numbered n JOIN inserted i ON i.chat_id = n.chat_id AND i.seq = n.seq
UNION ALL
SELECT r.ord, m.id, m.chat_id, m.seq, m.content, m.created_at, m.edited_at, m.deleted_at,
    m.reply_to_id, u.username, u.display_name,
    ARRAY(SELECT x.user_id FROM message_mentions x WHERE x.message_id = m.id ORDER BY x.user_id),
    (SELECT json_agg(json_build_array(x.emoji, x.user_id) ORDER BY x.created_at, x.user_id)
        FROM reactions x WHERE x.message_id = m.id),
    (SELECT json_agg(json_build_array(a.id, a.filename, a.content_type, a.size) ORDER BY a.id)
        FROM attachments a WHERE a.message_id = m.id)
FROM resent r JOIN messages m ON m.id = r.id LEFT JOIN users u ON u.id = m.sender_id
"""
).columns(created_at=UTCDateTime(), edited_at=UTCDateTime(), deleted_at=UTCDateTime())


async def store_postgresql(
    conn: AsyncConnection,
    rows: Sequence[NewMessage],
    mentions: Mentions,
    now: datetime,
    *,
    on_driver: bool = False,
) -> Stored:
    """The batch in one statement. `on_driver`: the connection is in autocommit (the
    writer's own), and the statement runs on asyncpg itself (`fetch_on_driver`); else
    through SQLAlchemy, in the session's transaction."""
    mention_ord = [n for n, r in enumerate(rows) for _ in mentions.get(r, ())]
    mention_user = [uid for r in rows for uid in mentions.get(r, ())]
    params = {
        "ord": list(range(len(rows))),
        "chat_id": [r.chat_id for r in rows],
        "sender_id": [r.user_id for r in rows],
        "content": [r.content for r in rows],
        "client_id": [r.client_id for r in rows],
        "reply_to": [r.reply_to for r in rows],
        "search_text": [terms.search_text(r.content) for r in rows],
        "now": now,
        "mention_ord": mention_ord,
        "mention_user": mention_user,
    }
    found: Sequence[Any]
    if on_driver:
        to_time = _result_time(conn.dialect)
        found = [_record_row(record, to_time) for record in
                 await fetch_on_driver(conn, _PG_BATCH, params)]  # fmt: skip
    else:
        found = (await conn.execute(_PG_BATCH, params)).all()
    placed: dict[int, tuple[int, int]] = {}
    resent: dict[int, StoredRow] = {}
    for row in found:
        if row.content is None:  # new
            placed[row.ord] = (row.id, row.seq)
        else:
            resent[row.ord] = _stored_row(
                dict(row._mapping) if hasattr(row, "_mapping") else vars(row)
            )
    return placed, resent


def _record_row(record: Any, to_time: Callable[[Any], datetime | None]) -> SimpleNamespace:
    """An asyncpg record of `_PG_BATCH` as SQLAlchemy's row would read (times in UTC)."""
    row = SimpleNamespace(**dict(record.items()))
    if row.content is not None:  # a resend's stored message
        for key in ("created_at", "edited_at", "deleted_at"):
            setattr(row, key, to_time(getattr(row, key)))
    return row


def _stored_row(fields: dict[str, Any]) -> StoredRow:
    """A resend's stored message, its JSON columns decoded."""
    return StoredRow(
        id=fields["id"],
        chat_id=fields["chat_id"],
        seq=fields["seq"],
        content=fields["content"],
        created_at=fields["created_at"],
        edited_at=fields["edited_at"],
        deleted_at=fields["deleted_at"],
        reply_to_id=fields["reply_to_id"],
        username=fields["username"],
        display_name=fields["display_name"],
        mentions=_json(fields["mentions"]),
        reactions=_json(fields["reactions"]),
        attachments=_json(fields["attachments"]),
    )


def _json(value: Any) -> list[Any]:
    if value is None:
        return []
    return cast(list[Any], json.loads(value) if isinstance(value, str) else value)


# SQLite: the batch travels as one JSON parameter per statement (json_each), so a statement's
# text is the same for every batch size (sqlite3 keeps it prepared). They run straight on
# the sqlite3 connection, in its thread (`_sqlite_batch`), not through SQLAlchemy.
_SQLITE_RESENT = """
SELECT json_extract(j.value, '$[0]') AS ord, m.id, m.chat_id, m.seq, m.content, m.created_at,
    m.edited_at, m.deleted_at, m.reply_to_id, u.username, u.display_name,
    (SELECT json_group_array(x.user_id) FROM (SELECT user_id FROM message_mentions
        WHERE message_id = m.id ORDER BY user_id) x) AS mentions,
    (SELECT json_group_array(json_array(x.emoji, x.user_id)) FROM (SELECT emoji, user_id
        FROM reactions WHERE message_id = m.id ORDER BY created_at, user_id) x) AS reactions,
    (SELECT json_group_array(json_array(x.id, x.filename, x.content_type, x.size))
        FROM (SELECT id, filename, content_type, size FROM attachments
        WHERE message_id = m.id ORDER BY id) x) AS attachments
FROM json_each(:keys) j
JOIN messages m ON m.sender_id = json_extract(j.value, '$[1]')
    AND m.client_id = json_extract(j.value, '$[2]')
LEFT JOIN users u ON u.id = m.sender_id
"""
# The INSERT comes first: it numbers the batch's new messages from each chat's last_seq (the
# write lock is held: nobody else moves it) and leaves out resends and deleted chats; then
# the chats' last_seq moves by what was inserted.
_SQLITE_INSERT = """
INSERT INTO messages (chat_id, seq, sender_id, content, client_id, reply_to_id, created_at,
    search_text)
SELECT f.chat_id, c.last_seq + f.n, f.sender_id, f.content, f.client_id, f.reply_to_id, :now,
    f.search_text
FROM (
    SELECT i.*, row_number() OVER (PARTITION BY i.chat_id ORDER BY i.ord) AS n
    FROM (
        SELECT j.key AS ord, json_extract(j.value, '$[0]') AS chat_id,
            json_extract(j.value, '$[1]') AS sender_id, json_extract(j.value, '$[2]') AS content,
            json_extract(j.value, '$[3]') AS client_id,
            json_extract(j.value, '$[4]') AS reply_to_id,
            json_extract(j.value, '$[5]') AS search_text
        FROM json_each(:rows) j
    ) i
    WHERE NOT EXISTS (
        SELECT 1 FROM messages m WHERE m.sender_id = i.sender_id AND m.client_id = i.client_id
    )
) f
JOIN chats c ON c.id = f.chat_id
ORDER BY f.ord
RETURNING id, chat_id, seq, sender_id, client_id
"""
_SQLITE_BUMP = """
UPDATE chats SET last_seq = last_seq + json_extract(j.value, '$[1]'), last_activity_at = :now
FROM json_each(:counts) j WHERE chats.id = json_extract(j.value, '$[0]')
"""
_SQLITE_MENTIONS = """
INSERT INTO message_mentions (message_id, user_id, chat_id, seq)
SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),
    json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]')
FROM json_each(:rows) j
"""
_SQLITE_READ = """
UPDATE memberships SET last_read_seq = json_extract(j.value, '$[2]')
FROM json_each(:marks) j
WHERE memberships.chat_id = json_extract(j.value, '$[0]')
    AND memberships.user_id = json_extract(j.value, '$[1]')
"""


async def store_sqlite(
    conn: AsyncConnection,
    rows: Sequence[NewMessage],
    mentions: Mentions,
    now: datetime,
    *,
    transaction: bool = False,
) -> Stored:
    """The batch's statements run in the connection's own thread in one hand-off (not one,
    or three, per statement): inside the transaction the session began, or (`transaction`)
    in their own, BEGIN IMMEDIATE to COMMIT, in that same hand-off. When a row's chat is
    gone, that transaction is rolled back (the caller stores the others again)."""
    dialect = conn.dialect
    stamp = _bind_time(dialect)(now)
    try:
        texts = [terms.search_text(r.content) for r in rows]  # here: the stemmer's thread
        run: Callable[[sqlite3.Connection], _Placed] = functools.partial(
            _sqlite_batch, drafts=rows, texts=texts, mentions=mentions, stamp=stamp
        )
        if transaction:
            run = functools.partial(_sqlite_transaction, batch=run, size=len(rows))
        placed, found = await run_in_sqlite_thread(conn, run)
    except sqlite3.IntegrityError as exc:
        raise IntegrityError("message batch", None, exc) from exc
    except sqlite3.Error as exc:  # as SQLAlchemy would raise it: the writer's handling applies
        raise OperationalError("message batch", None, exc) from exc
    resent: dict[int, StoredRow] = {}
    if found:
        to_time = _result_time(dialect)
        for n, row in found:
            fields = dict(zip(_RESENT_FIELDS, row, strict=True))
            for key in ("created_at", "edited_at", "deleted_at"):
                fields[key] = to_time(fields[key])
            resent[n] = _stored_row(fields)
    return placed, resent


async def run_in_sqlite_thread(conn: AsyncConnection, fn: Callable[..., T], *args: Any) -> T:
    """`fn(sqlite3_connection, *args)` in the thread of the aiosqlite connection under
    `conn`, in one hand-off. aiosqlite has no public way to do this: its private
    `Connection._execute(fn, *args)` (queue a call to its thread) and `_conn` (the
    sqlite3 connection), checked by tests/unit/test_private_api.py."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # aiosqlite's Connection: owns a thread and sqlite3
    return cast(T, await driver._execute(fn, driver._conn, *args))


_RESENT_FIELDS = (
    "ord", "id", "chat_id", "seq", "content", "created_at", "edited_at", "deleted_at",
    "reply_to_id", "username", "display_name", "mentions", "reactions", "attachments",
)  # fmt: skip


# per new draft (by position) its message id and seq; the stored rows of resends
_Placed = tuple[dict[int, tuple[int, int]], list[tuple[int, tuple[Any, ...]]]]


def _sqlite_transaction(
    db: sqlite3.Connection, *, batch: Callable[[sqlite3.Connection], _Placed], size: int
) -> _Placed:
    """A `_sqlite_batch` of `size` drafts in a transaction of its own (the write lock taken
    up front)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = placed, resent = batch(db)
        if len(placed) + len(resent) < size:  # a chat is gone: the writer fails it,
            db.execute("ROLLBACK")  # and the writer stores the others again without it
        else:
            db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _sqlite_batch(
    db: sqlite3.Connection,
    drafts: Sequence[NewMessage],
    texts: Sequence[str],
    mentions: Mentions,
    stamp: Any,
) -> _Placed:
    """In the connection's thread, under the write lock: the batch's statements. Returns
    per new draft (by position) its message id and seq, and the stored rows of resends."""
    rows = [
        [d.chat_id, d.user_id, d.content, d.client_id, d.reply_to, t]
        for d, t in zip(drafts, texts, strict=True)
    ]
    inserted = db.execute(_SQLITE_INSERT, {"rows": json.dumps(rows), "now": stamp})
    new_rows: dict[int, list[tuple[int, int]]] = defaultdict(list)  # chat: (seq, id)
    new_keys: set[tuple[int, str]] = set()
    for message_id, chat_id, seq, sender_id, client_id in inserted.fetchall():
        new_rows[chat_id].append((seq, message_id))
        if client_id is not None:
            new_keys.add((sender_id, client_id))
    # Which drafts those are: per chat, the inserted ones in batch order got rising seqs.
    fresh: dict[int, list[int]] = defaultdict(list)
    rest: list[int] = []
    for n, d in enumerate(drafts):
        if d.chat_id in new_rows and (d.client_id is None or (d.user_id, d.client_id) in new_keys):
            fresh[d.chat_id].append(n)
        else:  # a resend, or its chat is gone
            rest.append(n)
    placed: dict[int, tuple[int, int]] = {}
    named: list[list[int]] = []
    read_to: dict[tuple[int, int], int] = {}
    for chat_id, positions in fresh.items():
        for n, (seq, message_id) in zip(positions, sorted(new_rows[chat_id]), strict=True):
            d = drafts[n]
            placed[n] = (message_id, seq)
            named.extend([message_id, uid, chat_id, seq] for uid in mentions.get(d, ()))
            read_to[(chat_id, d.user_id)] = seq  # seqs grow: the last one is the highest
    if new_rows:
        counts = [[chat_id, len(r)] for chat_id, r in new_rows.items()]
        db.execute(_SQLITE_BUMP, {"counts": json.dumps(counts), "now": stamp})
        if named:
            db.execute(_SQLITE_MENTIONS, {"rows": json.dumps(named)})
        marks = [[c, u, s] for (c, u), s in read_to.items()]
        db.execute(_SQLITE_READ, {"marks": json.dumps(marks)})
    keys = [[n, drafts[n].user_id, drafts[n].client_id] for n in rest if drafts[n].client_id]
    resent: list[tuple[int, tuple[Any, ...]]] = []
    if keys:  # rare (a client retrying): the stored messages as history shows them
        for row in db.execute(_SQLITE_RESENT, {"keys": json.dumps(keys)}).fetchall():
            resent.append((row[0], tuple(row)))
    return placed, resent


@functools.cache
def _bind_time(dialect: Dialect) -> Callable[[datetime], Any]:
    """How UTCDateTime binds a time on this dialect (SQLite: its text form)."""
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return (lambda value: value) if process is None else process


@functools.cache
def _result_time(dialect: Dialect) -> Callable[[Any], datetime | None]:
    process = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    return (lambda value: value) if process is None else process
