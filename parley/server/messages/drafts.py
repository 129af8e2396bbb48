"""What the writer stores: a send waiting (`Draft`), and `store_batch`, the one place where
messages are inserted (the SQL is in `db/batch.py`), with the public messages it makes of
the stored rows. The writer (writer.py) runs it inside its group commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.accounts.schemas import SenderPublic
from parley.server.db import batch
from parley.server.messages.mentions import mentions_by_send
from parley.server.messages.public import as_public, attachment_fields, public_fields, sender_fields
from parley.server.messages.schemas import MessagePublic

Result = tuple[MessagePublic, bool]


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
    thread_root_id: int | None = None  # a reply in that thread (its root, checked)
    also_in_chat: bool = False
    future: asyncio.Future[Result] = field(init=False)

    def __post_init__(self) -> None:
        self.future = asyncio.get_running_loop().create_future()

    @property
    def wanted(self) -> bool:
        return not self.future.done() and (self.alive is None or self.alive())


async def store_batch(
    session: AsyncSession, drafts: Sequence[Draft], *, now: datetime
) -> list[Result]:
    """Stores drafts as messages with their chats' next seqs (not committed): the one place
    where messages are inserted. Per draft, in order: the message and whether it is new; a
    draft whose (sender, client_id) is stored already, or came earlier in the batch, gets
    that message back and stores nothing.

    PostgreSQL: one statement (`db/batch.py`), after one more only when some text names a
    member with `@`. SQLite (the writer owns the connection, nobody waits on it): three
    statements, up to six with mentions and resends, none per message. Raises
    MissingChats (the caller rolls back) when a chat of a new message is gone."""
    unique, first = unique_drafts(drafts)
    mentions = await mentions_by_send(session, unique)
    stored = await batch.store(await session.connection(), unique, mentions, now)
    return in_order(drafts, results_of(unique, stored, mentions, now, committed=False), first)


def results_of(
    drafts: Sequence[Draft],
    stored: batch.Stored,
    mentions: dict[Draft, list[int]],
    now: datetime,
    *,
    committed: bool,
) -> dict[Draft, Result]:
    """Each draft's message, from what the batch stored. Raises MissingChats for drafts
    whose chat is gone (with the others' results when those are `committed` already)."""
    placed, resent = stored
    results: dict[Draft, Result] = {}
    for n, (message_id, seq) in placed.items():
        d = drafts[n]
        results[d] = (new_public(d, message_id, seq, now, mentions.get(d, [])), True)
    for n, row in resent.items():
        results[drafts[n]] = (resent_public(drafts[n], row), False)
    missing = {d.chat_id for d in drafts if d not in results}
    if missing:  # those chats were deleted meanwhile: their sends fail alone
        raise MissingChats(missing, results if committed else None)
    return results


Firsts = dict[tuple[int, str], Draft]


def unique_drafts(drafts: Sequence[Draft]) -> tuple[list[Draft], Firsts]:
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


def in_order(drafts: Sequence[Draft], stored: dict[Draft, Result], first: Firsts) -> list[Result]:
    results: list[Result] = []
    for d in drafts:
        if d in stored:
            results.append(stored[d])
        else:  # a second copy of a client_id within this batch
            assert d.client_id is not None
            results.append((stored[first[(d.user_id, d.client_id)]][0], False))
    return results


def new_public(
    d: Draft, message_id: int, seq: int, now: datetime, mentions: list[int]
) -> MessagePublic:
    fields = public_fields(
        id=message_id,
        chat_id=d.chat_id,
        seq=seq,
        sender=d.sender,
        content=d.content,
        created_at=now,
        edited_at=None,
        deleted_at=None,
        client_id=d.client_id,
        reply_to=d.reply_to,
        mentions=mentions,
    )
    return as_public(fields)


def resent_public(d: Draft, row: batch.StoredRow) -> MessagePublic:
    """A resend's stored message, as `messages_public` shows it, in its own chat."""
    reactions: dict[str, list[int]] = {}
    for emoji, user_id in row.reactions:
        reactions.setdefault(emoji, []).append(user_id)
    fields = public_fields(
        id=row.id,
        chat_id=row.chat_id,
        seq=row.seq,
        sender=sender_fields(d.user_id, row.username, row.display_name),
        content=row.content,
        created_at=row.created_at,
        edited_at=row.edited_at,
        deleted_at=row.deleted_at,
        client_id=d.client_id,
        reply_to=row.reply_to_id,
        attachments=[attachment_fields(*a) for a in row.attachments],
        reactions=reactions,
        mentions=row.mentions if "@" in row.content else (),
    )
    return as_public(fields)
