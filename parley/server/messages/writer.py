"""The batched message writer (group commit).

Every send of the process goes through one writer task. Sends that arrive while a batch
is being written wait in a bounded queue and are stored together in the next transaction;
a lone send is written at once (no timer). Per batch:

1. resends: drafts whose (sender, client_id) is already stored get the stored message
   (one SELECT, only when the batch carries client_ids);
2. `UPDATE chats SET last_seq = last_seq + n` per chat in one statement (RETURNING the new
   value): the row lock (PostgreSQL) or the write lock (SQLite) keeps seq gap-free;
3. one multi-row INSERT of the messages, RETURNING their ids (`store_batch`: the one place
   where a per-message hook, such as resolving mentions, belongs);
4. the senders' read markers, in one statement; then COMMIT.

Only after the commit are the waiting senders answered and the `message` events published
(the sender's copy, carrying its client_id, is the acknowledgement). A failed batch
answers every sender in it with the error (the caller turns it into `unavailable`) and
acknowledges nothing. A send that cannot enter the queue within `admit_timeout` seconds
is refused with Overloaded; a draft whose socket closed meanwhile is dropped unprocessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, insert, select, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.server.accounts.schemas import SenderPublic
from parley.server.clock import Clock
from parley.server.db.models import Attachment, Chat, Membership, Message
from parley.server.messages.mentions import store_mentions
from parley.server.messages.schemas import MessagePublic
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import ChatFrame, encode

log = logging.getLogger("parley.writer")
Result = tuple[MessagePublic, bool]
RETRIES = 3  # a batch that lost a race (duplicate client_id, deadlock) is tried again


class MissingChats(Exception):
    def __init__(self, chat_ids: set[int]) -> None:
        super().__init__(chat_ids)
        self.chat_ids = chat_ids


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
    ) -> None:
        self.sessions, self.broker, self.clock = sessions, broker, clock
        self.queue: asyncio.Queue[Draft] = asyncio.Queue(max_pending)
        self.max_batch, self.admit_timeout = max_batch, admit_timeout
        self.on_stored = on_stored
        self.batches = 0  # how many transactions; with `stored`, the mean batch size
        self.stored = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="message-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
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
            except (IntegrityError, DBAPIError) as exc:
                if attempt == RETRIES - 1 or not _is_race(exc):
                    raise
        else:
            raise errors.Unavailable("The message could not be stored")
        await self._deliver(plain, results)

    async def _write_batch(self, drafts: list[Draft]) -> list[Result]:
        now = self.clock()
        async with self.sessions() as session:
            existing = await _stored_resends(session, drafts)
            first: dict[tuple[int, str], Draft] = {}
            fresh: list[Draft] = []
            for d in drafts:
                key = (d.user_id, d.client_id) if d.client_id else None
                if key is not None and (key in existing or key in first):
                    continue
                if key is not None:
                    first[key] = d
                fresh.append(d)
            stored = await store_batch(session, fresh, now=now) if fresh else {}
            await session.commit()
        results: list[Result] = []
        for d in drafts:
            key = (d.user_id, d.client_id) if d.client_id else None
            if key is not None and key in existing:
                results.append((existing[key], False))
            elif d in stored:
                results.append((_public(*stored[d], d.sender), True))
            else:  # a second copy of a client_id within this batch
                assert key is not None
                results.append((_public(*stored[first[key]], d.sender), False))
        return results

    async def _write_with_attachments(self, draft: Draft) -> None:
        """A send with attachments is its own transaction: a bad attachment fails only it."""
        now = self.clock()
        try:
            async with self.sessions() as session:
                existing = await _stored_resends(session, [draft])
                if existing:
                    result = (next(iter(existing.values())), False)
                else:
                    message, mentioned = (await store_batch(session, [draft], now=now))[draft]
                    await _link_attachments(session, message, draft)
                    await session.commit()
                    result = (
                        _public(
                            message, mentioned, draft.sender, await _attached(session, message)
                        ),
                        True,
                    )
        except errors.ParleyError as exc:
            draft.future.set_exception(exc)
            return
        await self._deliver([draft], [result])

    async def _deliver(self, drafts: Sequence[Draft], results: Sequence[Result]) -> None:
        created = 0
        for d, (public, is_new) in zip(drafts, results, strict=True):
            if is_new:
                created += 1
                await self.broker.publish(
                    ChatFrame(
                        public.chat_id, encode("message", message=public), sender_id=d.user_id
                    )
                )
            if not d.future.done():
                d.future.set_result((public, is_new))
        self.batches += 1
        self.stored += created
        if self.on_stored is not None:
            self.on_stored(created)


async def store_batch(
    session: AsyncSession, drafts: Sequence[Draft], *, now: datetime
) -> dict[Draft, tuple[Message, list[int]]]:
    """Stores drafts as messages with their chats' next seqs (not committed), with the ids
    each one mentions: the one place where messages are inserted, so a per-message step
    goes in `_row` or in the loop after the INSERT here."""
    per_chat = Counter(d.chat_id for d in drafts)
    tops = await session.execute(
        update(Chat)
        .where(Chat.id.in_(per_chat))
        .values(
            last_seq=Chat.last_seq + case(per_chat, value=Chat.id, else_=0),
            last_activity_at=now,
        )
        .returning(Chat.id, Chat.last_seq)
    )
    next_seq = {chat_id: last - per_chat[chat_id] for chat_id, last in tops.tuples()}
    if len(next_seq) != len(per_chat):  # a chat deleted meanwhile: its sends fail alone
        raise MissingChats(set(per_chat) - set(next_seq))
    rows: list[dict[str, Any]] = []
    for d in drafts:
        next_seq[d.chat_id] += 1
        rows.append(_row(d, next_seq[d.chat_id], now))
    # executemany form: SQLAlchemy sends one multi-row INSERT ... RETURNING ("insertmanyvalues")
    # from a statement compiled once, ids in the drafts' order.
    ids = await session.execute(
        insert(Message).returning(Message.id, sort_by_parameter_order=True), rows
    )
    stored = {
        d: Message(id=mid, **r) for d, r, mid in zip(drafts, rows, ids.scalars(), strict=True)
    }
    stored_with: dict[Draft, tuple[Message, list[int]]] = {}
    for d, message in stored.items():  # per message: mentions (a query only when it has `@`)
        mentioned = await store_mentions(session, message, chat_type=d.chat_type, role=d.role)
        stored_with[d] = (message, mentioned)
    read_to: dict[tuple[int, int], int] = {}
    for d, r in zip(drafts, rows, strict=True):
        read_to[(d.chat_id, d.user_id)] = r["seq"]  # seqs grow: the last one is the highest
    await session.execute(
        _READ_MARKER, [{"c": c, "u": u, "s": seq} for (c, u), seq in read_to.items()]
    )
    return stored_with


_memberships = cast(Table, Membership.__table__)
_READ_MARKER = (  # a Core statement: executemany with one set of values per row
    update(_memberships)
    .where(_memberships.c.chat_id == bindparam("c"), _memberships.c.user_id == bindparam("u"))
    .values(last_read_seq=bindparam("s"))
)


def _row(d: Draft, seq: int, now: datetime) -> dict[str, Any]:
    return {
        "chat_id": d.chat_id,
        "seq": seq,
        "sender_id": d.user_id,
        "content": d.content,
        "client_id": d.client_id,
        "reply_to_id": d.reply_to,
        "created_at": now,
    }


async def _stored_resends(
    session: AsyncSession, drafts: Sequence[Draft]
) -> dict[tuple[int, str], MessagePublic]:
    keys = {(d.user_id, d.client_id) for d in drafts if d.client_id}
    if not keys:
        return {}
    from parley.server.messages.service import messages_public

    rows = list(
        (
            await session.execute(
                select(Message).where(tuple_(Message.sender_id, Message.client_id).in_(keys))
            )
        ).scalars()
    )
    publics = await messages_public(session, rows)
    return {(m.sender_id or 0, m.client_id or ""): p for m, p in zip(rows, publics, strict=True)}


async def _link_attachments(session: AsyncSession, message: Message, draft: Draft) -> None:
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


async def _attached(session: AsyncSession, message: Message) -> list[Any]:
    from parley.server.messages.service import attachment_public

    rows = await session.execute(
        select(Attachment).where(Attachment.message_id == message.id).order_by(Attachment.id)
    )
    return [attachment_public(a) for a in rows.scalars()]


def _public(
    m: Message,
    mentions: list[int],
    sender: SenderPublic | None,
    attachments: list[Any] | None = None,
) -> MessagePublic:
    return MessagePublic(
        id=m.id,
        chat_id=m.chat_id,
        seq=m.seq,
        sender=sender,
        content=m.content,
        created_at=m.created_at,
        edited_at=None,
        deleted=False,
        client_id=m.client_id,
        reply_to=m.reply_to_id,
        attachments=attachments or [],
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
