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
the connection's thread in one hand-off: that SQL, and the driver calls that run it, are
in `db/batch.py`; `drafts.py` (where `store_batch` is) turns their rows into public
messages (`public.py`).

Only after the commit are the waiting senders answered and the `message` events published
(the sender's copy, carrying its client_id, is the acknowledgement). A batch that fails
because the database is unreachable (`is_unreachable`) answers every sender in it with the
error (the caller turns it into `unavailable`) and acknowledges nothing; one that fails
for another reason stored nothing, and its sends are tried again one by one, so only the
send that caused it fails. A send that cannot enter the queue within `admit_timeout` seconds
is refused with Overloaded; a draft whose socket closed meanwhile is dropped unprocessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from parley import errors
from parley.clock import Clock
from parley.server.db import batch
from parley.server.db.models import Attachment, Message
from parley.server.db.session import is_race, is_unreachable
from parley.server.jobs import Loop
from parley.server.messages import history, terms, thread_replies
from parley.server.messages.drafts import (
    Draft,
    MissingChats,
    Result,
    in_order,
    results_of,
    store_batch,
    unique_drafts,
)
from parley.server.messages.mentions import mentions_by_send
from parley.server.messages.public import (
    as_public,
    attachment_public,
)
from parley.server.messages.schemas import MessagePublic
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import ChatFrame

log = logging.getLogger("parley.writer")
_REUSED = "This client_id belongs to a message of another chat"
RETRIES = 3  # a batch that lost a race (duplicate client_id, deadlock) is tried again


class Unpublished(Exception):
    """A batch was stored, but its events could not be published: not to be stored again."""


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
        # Told of each batch's new messages once their senders have their answers, in
        # order (link previews, Web Push, bot events); each must return at once (queue).
        self.on_new: list[Callable[[Sequence[MessagePublic]], None]] = []
        self.batches = 0  # how many transactions; with `stored`, the mean batch size
        self.stored = 0
        self._loop = Loop("message-writer", self._run)
        self._conn: AsyncConnection | None = None  # the writer's own (PostgreSQL: autocommit)

    def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.stop()
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
            except Unpublished as exc:  # stored: trying again would store them twice
                log.warning("a batch's events were not published: %r", exc.__cause__)
                _fail(drafts, errors.Unavailable())
            except Exception as exc:  # nothing of the batch was stored
                log.warning("a batch of %d sends failed: %s", len(drafts), type(exc).__name__)
                if len(drafts) > 1 and not is_unreachable(exc):
                    await self._write_each(drafts)
                else:
                    _fail(drafts, exc)

    async def _write_each(self, drafts: list[Draft]) -> None:
        """After a batch failed for a reason other than an unreachable database (a value
        the database refused, a statement too large): each send alone, so that only the
        send that caused it fails."""
        for n, d in enumerate(drafts):
            if d.future.done():
                continue
            try:
                await self._write([d])
            except asyncio.CancelledError:
                _fail(drafts[n:], errors.Unavailable())
                raise
            except Unpublished:
                _fail([d], errors.Unavailable())
            except Exception as exc:
                if is_unreachable(exc):  # the rest would wait for it in turn: they fail now
                    _fail(drafts[n:], exc)
                    return
                log.warning("a send failed alone: %s", type(exc).__name__)
                _fail([d], exc)

    async def _write(self, drafts: list[Draft]) -> None:
        plain = [d for d in drafts if not d.attachment_ids and d.thread_root_id is None]
        for single in (d for d in drafts if d.attachment_ids or d.thread_root_id is not None):
            await self._write_alone(single)
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
                if attempt == RETRIES - 1 or not is_race(exc):
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
        unique, first = unique_drafts(drafts)
        mentions: dict[Draft, list[int]] = {}
        if any("@" in d.content for d in unique):
            async with self.sessions() as session:
                mentions = await mentions_by_send(session, unique)
        try:
            stored = await self._store_on_own(engine, unique, mentions, now)
        except MissingChats as exc:
            if exc.stored is not None:  # PostgreSQL: the statement committed the others
                kept = [d for d in drafts if d.chat_id not in exc.chat_ids]
                exc.results = in_order(kept, exc.stored, first)
            raise
        return in_order(drafts, stored, first)

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
                stored = await batch.store_sqlite(conn, drafts, mentions, now, transaction=True)
            else:
                stored = await batch.store_postgresql(conn, drafts, mentions, now, on_driver=True)
            return results_of(drafts, stored, mentions, now, committed=not sqlite)
        except MissingChats:  # nothing failed: the connection is fine
            raise
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def _write_alone(self, draft: Draft) -> None:
        """A send with attachments, or a thread reply, is its own transaction: a bad
        attachment or a root gone fails only it. A reply also updates its root, whose
        `message_updated` is published after the reply's `message`."""
        extra: list[ChatFrame] = []
        try:
            async with self.sessions() as session:
                now = self.clock()
                [(public, is_new)] = await store_batch(session, [draft], now=now)
                root = None
                if is_new:
                    if draft.attachment_ids:
                        await _link_attachments(session, public, draft)
                    if draft.thread_root_id is not None:
                        root = await _record_reply(session, public, draft, now)
                    await session.commit()
                    if draft.attachment_ids:
                        public.attachments = await _attached(session, public.id)
                if draft.thread_root_id is not None:
                    await _thread_fields(session, public)
                if root is not None:
                    extra.append(await _root_updated(session, root))
        except MissingChats:
            draft.future.set_exception(errors.NotFound("No such chat", code="chat_not_found"))
            return
        except Exception as exc:  # this send's own failure: the batch's others go on
            if is_unreachable(exc):
                raise
            log.warning("a send written alone failed: %s", type(exc).__name__)
            _fail([draft], exc)
            return
        await self._deliver([draft], [(public, is_new)], extra)

    async def _deliver(
        self, drafts: Sequence[Draft], results: Sequence[Result], extra: Sequence[ChatFrame] = ()
    ) -> None:
        """Publishes the new messages (then `extra`: a thread root's update), then answers
        each sender (Conflict for a resend whose client_id is a message of another chat:
        nothing of that message)."""
        published = [
            ChatFrame.of(public.chat_id, frames.NewMessage(public), sender_id=d.user_id)
            for d, (public, is_new) in zip(drafts, results, strict=True)
            if is_new
        ]
        new_count = len(published)
        published += extra
        if published:
            try:
                await self.broker.publish_many(published)
            except Exception as exc:
                raise Unpublished() from exc
        for d, result in zip(drafts, results, strict=True):
            if d.future.done():
                continue
            if result[0].chat_id == d.chat_id:
                d.future.set_result(result)
            else:
                d.future.set_exception(errors.Conflict(_REUSED))
        self.batches += 1
        self.stored += new_count
        if self.on_stored is not None:
            self.on_stored(new_count)
        new = [public for public, is_new in results if is_new]
        for listener in self.on_new if new else ():
            try:
                listener(new)
            except Exception:
                log.warning("a listener of new messages failed", exc_info=True)


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
    stored = await session.get(Message, message.id)
    if stored is not None:  # its file names are searched too
        stored.search_text = await terms.search_text_of(session, stored)


async def _record_reply(
    session: AsyncSession, public: MessagePublic, draft: Draft, now: datetime
) -> Message:
    assert draft.thread_root_id is not None
    return await thread_replies.record_reply(
        session,
        reply_id=public.id,
        seq=public.seq,
        sender_id=draft.user_id,
        root_id=draft.thread_root_id,
        also_in_chat=draft.also_in_chat,
        mentions=public.mentions,
        now=now,
    )


async def _thread_fields(session: AsyncSession, public: MessagePublic) -> None:
    """A reply's thread columns as stored (a resend's too: the stored message decides)."""
    row = (
        await session.execute(
            select(Message.thread_root_id, Message.also_in_chat).where(Message.id == public.id)
        )
    ).one()
    public.thread_root_id, public.also_in_chat = row.thread_root_id, row.also_in_chat


async def _root_updated(session: AsyncSession, root: Message) -> ChatFrame:
    """The root's `message_updated`, with its new thread summary."""
    [fields] = await history.load_messages(session, [root.id])
    public = as_public(fields)
    return ChatFrame.of(root.chat_id, frames.MessageUpdated(public), sender_id=root.sender_id)


async def _attached(session: AsyncSession, message_id: int) -> list[Any]:
    rows = await session.execute(
        select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.id)
    )
    return [attachment_public(a) for a in rows.scalars()]


def _fail(drafts: Sequence[Draft], exc: BaseException) -> None:
    """Answers the drafts not answered yet with the error: ours, or the database's (the
    transports answer `unavailable` for it); anything else is a fault, logged here, and
    answered as `unavailable` too."""
    if not isinstance(exc, (errors.ParleyError, DBAPIError, OSError, TimeoutError)):
        log.error("storing a send failed", exc_info=exc)
        exc = errors.Unavailable("The message could not be stored")
    for d in drafts:
        if not d.future.done():
            d.future.set_exception(exc)
