"""The batched message writer (group commit).

Every send of the process goes through one writer task. Sends that arrive while a batch
is being written wait in a bounded queue and are stored together in the next transaction;
a lone send is written at once (no timer). `store_batch` writes a batch, the one place
where messages are inserted: resends (a stored (sender, client_id)) get the stored message;
each chat's last_seq moves by its count of new messages under the row lock (PostgreSQL) or
the write lock (SQLite), which keeps seq gap-free; the messages, their mentions and the
senders' read markers are written; then COMMIT. On PostgreSQL that is one statement
(data-modifying CTEs over arrays of the batch), two when a text names someone with `@`;
on SQLite three to six (the batch as one JSON parameter each), none per message, run in
the connection's thread in one hand-off.

Only after the commit are the waiting senders answered and the `message` events published
(the sender's copy, carrying its client_id, is the acknowledgement). A failed batch
answers every sender in it with the error (the caller turns it into `unavailable`) and
acknowledges nothing. A send that cannot enter the queue within `admit_timeout` seconds
is refused with Overloaded; a draft whose socket closed meanwhile is dropped unprocessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from parley import errors
from parley.clock import Clock
from parley.server.accounts.schemas import SenderPublic
from parley.server.db.models import Attachment, UTCDateTime
from parley.server.db.session import fetch_on_driver
from parley.server.messages.mentions import Named, members_named, parse_mentions, resolve_mentions
from parley.server.messages.schemas import MessagePublic, ReactionPublic
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import ChatFrame

log = logging.getLogger("parley.writer")
Result = tuple[MessagePublic, bool]
RETRIES = 3  # a batch that lost a race (duplicate client_id, deadlock) is tried again


class MissingChats(Exception):
    """Chats of the batch were deleted meanwhile. `stored`: what a PostgreSQL statement
    stored of the other chats (committed already: autocommit); `results`: the same in the
    order of the batch's other drafts, once the writer has put them in it."""

    def __init__(
        self,
        chat_ids: set[int],
        stored: dict[Draft, Result] | None = None,
        results: list[Result] | None = None,
    ) -> None:
        super().__init__(chat_ids)
        self.chat_ids = chat_ids
        self.stored = stored
        self.results = results


@dataclass(eq=False, slots=True)
class Draft:
    """One send waiting to be stored."""

    user_id: int
    chat_id: int
    content: str
    client_id: str | None = None
    reply_to: int | None = None
    attachment_ids: tuple[int, ...] = ()
    sender: SenderPublic | None = None
    chat_type: str = "group"  # with `role`: what resolving mentions needs (`@all`)
    role: str | None = None
    alive: Callable[[], bool] | None = None  # False once the sender's socket closed
    future: asyncio.Future[Result] = field(init=False)

    def __post_init__(self) -> None:
        self.future = asyncio.get_running_loop().create_future()

    @property
    def wanted(self) -> bool:
        return not self.future.done() and (self.alive is None or self.alive())


class Writer:
    """Owns the writing of messages for this process; `submit` is its only entry."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        broker: Broker,
        clock: Clock,
        *,
        max_pending: int = 2000,
        max_batch: int = 500,
        admit_timeout: float = 1.0,
        on_stored: Callable[[int], None] | None = None,
        engine: Callable[[], AsyncEngine] | None = None,
    ) -> None:
        """`engine`: the engine behind `sessions`, when `sessions` is not a plain
        sessionmaker (the application's follows its state); read once per batch, so a
        batch without a mention opens no session at all."""
        self.sessions, self.broker, self.clock = sessions, broker, clock
        self.engine = engine
        self.queue: asyncio.Queue[Draft] = asyncio.Queue(max_pending)
        self.max_batch, self.admit_timeout = max_batch, admit_timeout
        self.on_stored = on_stored
        # Told of every new message after it is published (bot events); must not block.
        self.listeners: list[Callable[[list[MessagePublic]], None]] = []
        self.batches = 0  # how many transactions; with `stored`, the mean batch size
        self.stored = 0
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None  # the writer's own (PostgreSQL: autocommit)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="message-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
        while not self.queue.empty():
            draft = self.queue.get_nowait()
            if not draft.future.done():
                draft.future.set_exception(errors.Unavailable("The server is shutting down"))

    async def submit(self, draft: Draft) -> asyncio.Future[Result]:
        """Queues a draft; its future resolves after the commit. Raises Overloaded."""
        self.start()
        try:
            self.queue.put_nowait(draft)
        except asyncio.QueueFull:
            try:
                async with self.clock.timeout(self.admit_timeout):
                    await self.queue.put(draft)
            except TimeoutError:
                raise errors.Overloaded() from None
        return draft.future

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            drafts = [d for d in batch if d.wanted]
            for d in batch:
                if not d.future.done() and d not in drafts:
                    d.future.cancel()  # its socket closed: dropped unprocessed
            if not drafts:
                continue
            try:
                await self._write(drafts)
            except asyncio.CancelledError:
                for d in drafts:
                    if not d.future.done():
                        d.future.set_exception(errors.Unavailable())
                raise
            except Exception as exc:  # the database failed: nothing of the batch is acked
                log.warning("a batch of %d sends failed: %s", len(drafts), type(exc).__name__)
                for d in drafts:
                    if not d.future.done():
                        d.future.set_exception(exc)

    async def _write(self, drafts: list[Draft]) -> None:
        plain = [d for d in drafts if not d.attachment_ids]
        for single in (d for d in drafts if d.attachment_ids):
            await self._write_with_attachments(single)
        if not plain:
            return
        for attempt in range(RETRIES):
            try:
                results = await self._write_batch(plain)
                break
            except MissingChats as exc:  # fail those sends, store the others
                gone = [d for d in plain if d.chat_id in exc.chat_ids]
                for d in gone:
                    d.future.set_exception(errors.NotFound("No such chat", code="chat_not_found"))
                plain = [d for d in plain if d.chat_id not in exc.chat_ids]
                if not plain:
                    return
                if exc.results is not None:  # the others are stored: answer them
                    results = exc.results
                    break
            except (IntegrityError, DBAPIError) as exc:
                if attempt == RETRIES - 1 or not _is_race(exc):
                    raise
        else:
            raise errors.Unavailable("The message could not be stored")
        await self._deliver(plain, results)

    async def _write_batch(self, drafts: list[Draft]) -> list[Result]:
        now = self.clock()
        engine = self.engine() if self.engine is not None else self.sessions.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            async with self.sessions() as session:
                results = await store_batch(session, drafts, now=now)
                await session.commit()
                return results
        # The mention lookup (a session, only when a text names someone) reads first; then
        # the batch is written in one go.
        unique, first = _unique(drafts)
        mentions: dict[Draft, list[int]] = {}
        if any("@" in d.content for d in unique):
            async with self.sessions() as session:
                mentions = await _resolve_mentions(session, unique)
        try:
            stored = await self._store_on_own(engine, unique, mentions, now)
        except MissingChats as exc:
            if exc.stored is not None:  # PostgreSQL: the statement committed the others
                kept = [d for d in drafts if d.chat_id not in exc.chat_ids]
                exc.results = _in_order(kept, exc.stored, first)
            raise
        return _in_order(drafts, stored, first)

    async def _store_on_own(
        self,
        engine: AsyncEngine,
        drafts: list[Draft],
        mentions: dict[Draft, list[int]],
        now: datetime,
    ) -> dict[Draft, Result]:
        """The batch on the writer's own connection, kept from one batch to the next: no
        pool checkout, and no return to the pool, whose reset is one more round trip (or,
        on SQLite, one more hand-off to the connection's thread). PostgreSQL: the batch
        is one statement, atomic by itself, run in autocommit: one round trip. SQLite:
        BEGIN IMMEDIATE to COMMIT in one hand-off. A connection that failed is dropped;
        the next batch opens another."""
        conn = self._conn
        sqlite = engine.dialect.name == "sqlite"
        if conn is not None and conn.engine is not engine:  # the state's engine was replaced
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()
            conn = None
        if conn is None or conn.closed or conn.invalidated:
            conn = await engine.connect()
            if not sqlite:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        try:
            if sqlite:
                return await _store_sqlite(conn, drafts, mentions, now, transaction=True)
            return await _store_postgresql(conn, drafts, mentions, now, on_driver=True)
        except MissingChats:  # nothing failed: the connection is fine
            raise
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def _write_with_attachments(self, draft: Draft) -> None:
        """A send with attachments is its own transaction: a bad attachment fails only it."""
        try:
            async with self.sessions() as session:
                [(public, is_new)] = await store_batch(session, [draft], now=self.clock())
                if is_new:
                    await _link_attachments(session, public, draft)
                    await session.commit()
                    public.attachments = await _attached(session, public.id)
        except MissingChats:
            draft.future.set_exception(errors.NotFound("No such chat", code="chat_not_found"))
            return
        except errors.ParleyError as exc:
            draft.future.set_exception(exc)
            return
        await self._deliver([draft], [(public, is_new)])

    async def _deliver(self, drafts: Sequence[Draft], results: Sequence[Result]) -> None:
        """Publishes the new messages, then answers each sender. A resend whose stored
        message is in another chat (its client_id reused there) gets Conflict, nothing of
        that message."""
        published = [
            ChatFrame.of(public.chat_id, frames.NewMessage(public), sender_id=d.user_id)
            for d, (public, is_new) in zip(drafts, results, strict=True)
            if is_new
        ]
        if published:
            await self.broker.publish_many(published)
            if self.listeners:
                new = [public for public, is_new in results if is_new]
                for listener in self.listeners:
                    try:
                        listener(new)
                    except Exception:
                        log.warning("a message listener failed", exc_info=True)
        for d, result in zip(drafts, results, strict=True):
            if d.future.done():
                continue
            if result[0].chat_id != d.chat_id:
                d.future.set_exception(
                    errors.Conflict("This client_id belongs to a message of another chat")
                )
            else:
                d.future.set_result(result)
        self.batches += 1
        self.stored += len(published)
        if self.on_stored is not None:
            self.on_stored(len(published))


async def store_batch(
    session: AsyncSession, drafts: Sequence[Draft], *, now: datetime
) -> list[Result]:
    """Stores drafts as messages with their chats' next seqs (not committed): the one place
    where messages are inserted. Per draft, in order: the message and whether it is new; a
    draft whose (sender, client_id) is stored already, or came earlier in the batch, gets
    that message back and stores nothing.

    PostgreSQL: one statement (`_PG_BATCH`), after one more only when some text names a
    member with `@`. SQLite (the writer owns the connection, nobody waits on it): three
    statements, up to six with mentions and resends, none per message. Raises
    MissingChats (the caller rolls back) when a chat of a new message is gone."""
    unique, first = _unique(drafts)
    mentions = await _resolve_mentions(session, unique)
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        stored = await _store_postgresql(conn, unique, mentions, now)
    else:
        stored = await _store_sqlite(conn, unique, mentions, now)
    return _in_order(drafts, stored, first)


Firsts = dict[tuple[int, str], Draft]


def _unique(drafts: Sequence[Draft]) -> tuple[list[Draft], Firsts]:
    """The drafts without later copies of a (sender, client_id), and each one's first."""
    unique: list[Draft] = []
    first: Firsts = {}
    for d in drafts:
        if d.client_id is not None:
            if (d.user_id, d.client_id) in first:
                continue
            first[(d.user_id, d.client_id)] = d
        unique.append(d)
    return unique, first


def _in_order(drafts: Sequence[Draft], stored: dict[Draft, Result], first: Firsts) -> list[Result]:
    results: list[Result] = []
    for d in drafts:
        if d in stored:
            results.append(stored[d])
        else:  # a second copy of a client_id within this batch
            assert d.client_id is not None
            results.append((stored[first[(d.user_id, d.client_id)]][0], False))
    return results


async def _resolve_mentions(
    session: AsyncSession, drafts: Sequence[Draft]
) -> dict[Draft, list[int]]:
    """Who each draft mentions: one query for the whole batch, only when some text names
    someone (a resend's lookup is wasted, and harmless)."""
    named = {
        d: n
        for d in drafts
        if "@" in d.content and (n := parse_mentions(d.content, chat_type=d.chat_type, role=d.role))
    }
    if not named:
        return {}
    per_chat: dict[int, Named] = {}
    for d, n in named.items():
        seen = per_chat.get(d.chat_id, Named())
        per_chat[d.chat_id] = Named(seen.tokens + n.tokens, seen.everyone or n.everyone)
    members = await members_named(session, per_chat)
    return {
        d: ids
        for d, n in named.items()
        if (ids := resolve_mentions(n, members.get(d.chat_id, {}), sender_id=d.user_id))
    }


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
        CAST(:content AS text[]), CAST(:client_id AS text[]), CAST(:reply_to AS bigint[])
    ) AS t(ord, chat_id, sender_id, content, client_id, reply_to_id)
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
    INSERT INTO messages (chat_id, seq, sender_id, content, client_id, reply_to_id, created_at)
    SELECT chat_id, seq, sender_id, content, client_id, reply_to_id, :now
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


async def _store_postgresql(
    conn: AsyncConnection,
    drafts: Sequence[Draft],
    mentions: dict[Draft, list[int]],
    now: datetime,
    *,
    on_driver: bool = False,
) -> dict[Draft, Result]:
    """`on_driver`: the connection is in autocommit (the writer's own), and the statement
    runs on asyncpg itself (`fetch_on_driver`); else through SQLAlchemy, in the session's
    transaction."""
    mention_ord = [n for n, d in enumerate(drafts) for _ in mentions.get(d, ())]
    mention_user = [uid for d in drafts for uid in mentions.get(d, ())]
    params = {
        "ord": list(range(len(drafts))),
        "chat_id": [d.chat_id for d in drafts],
        "sender_id": [d.user_id for d in drafts],
        "content": [d.content for d in drafts],
        "client_id": [d.client_id for d in drafts],
        "reply_to": [d.reply_to for d in drafts],
        "now": now,
        "mention_ord": mention_ord,
        "mention_user": mention_user,
    }
    rows: Sequence[Any]
    if on_driver:
        to_time = _result_time(conn.dialect)
        rows = [_record_row(record, to_time) for record in
                await fetch_on_driver(conn, _PG_BATCH, params)]  # fmt: skip
    else:
        rows = (await conn.execute(_PG_BATCH, params)).all()
    stored: dict[Draft, Result] = {}
    for row in rows:
        d = drafts[row.ord]
        if row.content is None:  # new
            stored[d] = (_new_public(d, row.id, row.seq, now, mentions.get(d, [])), True)
        else:
            stored[d] = (_resent_public(d, row), False)
    missing = {d.chat_id for d in drafts if d not in stored}
    if missing:  # those chats were deleted meanwhile: their sends fail alone
        raise MissingChats(missing, stored)
    return stored


def _record_row(record: Any, to_time: Callable[[Any], datetime | None]) -> SimpleNamespace:
    """An asyncpg record of `_PG_BATCH` as SQLAlchemy's row would read (times in UTC)."""
    row = SimpleNamespace(**dict(record.items()))
    if row.content is not None:  # a resend's stored message
        for key in ("created_at", "edited_at", "deleted_at"):
            setattr(row, key, to_time(getattr(row, key)))
    return row


def _resent_public(d: Draft, row: Any) -> MessagePublic:
    """A resend's stored message as `messages_public` shows it, from a row of `_PG_BATCH`
    or `_SQLITE_RESENT`."""
    from parley.server.messages.service import attachment_public

    deleted = row.deleted_at is not None
    by_emoji: dict[str, list[int]] = {}
    for emoji, user_id in _json(row.reactions):
        by_emoji.setdefault(emoji, []).append(user_id)
    attachments = [
        attachment_public(Attachment(id=i, filename=f, content_type=t, size=s))
        for i, f, t, s in _json(row.attachments)
    ]
    return MessagePublic(
        id=row.id,
        chat_id=row.chat_id,  # its own chat: a client_id reused elsewhere is refused on it
        seq=row.seq,
        sender=SenderPublic(id=d.user_id, username=row.username, display_name=row.display_name),
        content="" if deleted else row.content,
        created_at=row.created_at,
        edited_at=row.edited_at,
        deleted=deleted,
        client_id=d.client_id,
        reply_to=row.reply_to_id,
        attachments=[] if deleted else attachments,
        reactions=[]
        if deleted
        else [ReactionPublic(emoji=e, count=len(u), user_ids=u) for e, u in by_emoji.items()],
        mentions=[] if deleted or "@" not in row.content else _json(row.mentions),
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
INSERT INTO messages (chat_id, seq, sender_id, content, client_id, reply_to_id, created_at)
SELECT f.chat_id, c.last_seq + f.n, f.sender_id, f.content, f.client_id, f.reply_to_id, :now
FROM (
    SELECT i.*, row_number() OVER (PARTITION BY i.chat_id ORDER BY i.ord) AS n
    FROM (
        SELECT j.key AS ord, json_extract(j.value, '$[0]') AS chat_id,
            json_extract(j.value, '$[1]') AS sender_id, json_extract(j.value, '$[2]') AS content,
            json_extract(j.value, '$[3]') AS client_id,
            json_extract(j.value, '$[4]') AS reply_to_id
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


async def _store_sqlite(
    conn: AsyncConnection,
    drafts: Sequence[Draft],
    mentions: dict[Draft, list[int]],
    now: datetime,
    *,
    transaction: bool = False,
) -> dict[Draft, Result]:
    """The batch's statements run in the connection's own thread in one hand-off (not one,
    or three, per statement): inside the transaction the session began, or (`transaction`)
    in their own, BEGIN IMMEDIATE to COMMIT, in that same hand-off."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection  # aiosqlite's Connection: owns a thread and sqlite3
    dialect = conn.dialect
    stamp = _bind_time(dialect)(now)
    run = _sqlite_transaction if transaction else _sqlite_batch
    try:
        placed, resent = await driver._execute(run, driver._conn, drafts, mentions, stamp)
    except sqlite3.IntegrityError as exc:
        raise IntegrityError("message batch", None, exc) from exc
    except sqlite3.Error as exc:  # as SQLAlchemy would raise it: the writer's handling applies
        raise OperationalError("message batch", None, exc) from exc
    stored: dict[Draft, Result] = {}
    for n, (message_id, seq) in placed.items():
        d = drafts[n]
        stored[d] = (_new_public(d, message_id, seq, now, mentions.get(d, [])), True)
    if resent:
        to_time = _result_time(dialect)
        for n, row in resent:
            fields = dict(zip(_RESENT_FIELDS, row, strict=True))
            for key in ("created_at", "edited_at", "deleted_at"):
                fields[key] = to_time(fields[key])
            stored[drafts[n]] = (_resent_public(drafts[n], SimpleNamespace(**fields)), False)
    missing = {d.chat_id for d in drafts if d not in stored}
    if missing:  # those chats were deleted meanwhile: their sends fail alone
        raise MissingChats(missing)  # rolled back by the caller: the others go again
    return stored


_RESENT_FIELDS = (
    "ord", "id", "chat_id", "seq", "content", "created_at", "edited_at", "deleted_at",
    "reply_to_id", "username", "display_name", "mentions", "reactions", "attachments",
)  # fmt: skip


def _sqlite_transaction(
    db: sqlite3.Connection,
    drafts: Sequence[Draft],
    mentions: dict[Draft, list[int]],
    stamp: Any,
) -> tuple[dict[int, tuple[int, int]], list[tuple[int, tuple[Any, ...]]]]:
    """`_sqlite_batch` in a transaction of its own (the write lock taken up front)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = placed, resent = _sqlite_batch(db, drafts, mentions, stamp)
        if len(placed) + len(resent) < len(drafts):  # a chat is gone: MissingChats follows,
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
    drafts: Sequence[Draft],
    mentions: dict[Draft, list[int]],
    stamp: Any,
) -> tuple[dict[int, tuple[int, int]], list[tuple[int, tuple[Any, ...]]]]:
    """In the connection's thread, under the write lock: the batch's statements. Returns
    per new draft (by position) its message id and seq, and the stored rows of resends."""
    rows = [[d.chat_id, d.user_id, d.content, d.client_id, d.reply_to] for d in drafts]
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


async def _link_attachments(session: AsyncSession, message: MessagePublic, draft: Draft) -> None:
    ids = set(draft.attachment_ids)
    result = await session.execute(
        update(Attachment)
        .where(
            Attachment.id.in_(ids),
            Attachment.uploader_id == draft.user_id,
            Attachment.chat_id == message.chat_id,
            Attachment.message_id.is_(None),
        )
        .values(message_id=message.id)
    )
    if result.rowcount != len(ids):  # type: ignore[attr-defined]
        await session.rollback()
        raise errors.ValidationFailed(
            "attachment_ids must be your own unsent uploads to this chat",
            code="validation_error",
        )


async def _attached(session: AsyncSession, message_id: int) -> list[Any]:
    from parley.server.messages.service import attachment_public

    rows = await session.execute(
        select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.id)
    )
    return [attachment_public(a) for a in rows.scalars()]


def _new_public(
    d: Draft, message_id: int, seq: int, now: datetime, mentions: list[int]
) -> MessagePublic:
    return MessagePublic(
        id=message_id,
        chat_id=d.chat_id,
        seq=seq,
        sender=d.sender,
        content=d.content,
        created_at=now,
        edited_at=None,
        deleted=False,
        client_id=d.client_id,
        reply_to=d.reply_to,
        attachments=[],
        reactions=[],
        mentions=mentions,
    )


def _is_race(exc: Exception) -> bool:
    """A duplicate client_id stored by another process, or a PostgreSQL deadlock."""
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(
        getattr(exc, "orig", None), "pgcode", None
    )
    return code in {"40P01", "40001"}
