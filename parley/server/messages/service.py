"""Messages: send (idempotent by client_id), history, edit, delete (reactions and read
markers: reactions.py).

Every write commits first and publishes after: the database is the truth, pub/sub only
tells. A chat event is published once per chat; hubs fan it out.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Required, TypedDict, Unpack, cast

from sqlalchemy import Select, delete, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.accounts.schemas import SenderPublic
from parley.server.audit import audit
from parley.server.cache import SendChecks
from parley.server.chats.access import access_chat, access_member
from parley.server.db.models import (
    Attachment,
    Chat,
    Membership,
    Message,
    MessageMention,
    MessagePreview,
    Reaction,
    User,
)
from parley.server.db.unit import after_commit
from parley.server.messages.drafts import Draft, Result
from parley.server.messages.history import Paging, load_page
from parley.server.messages.mentions import (
    clear_mentions,
    mentions_of,
    replace_mentions,
)
from parley.server.messages.notices import check_not_notice
from parley.server.messages.public import as_public, attachment_public, row_fields
from parley.server.messages.schemas import AttachmentPublic, MessagePublic, SendFields
from parley.server.messages.terms import search_text_of
from parley.server.messages.writer import Writer
from parley.server.metrics import ServerMetrics
from parley.server.moderation.service import blocked_ids
from parley.server.previews.stored import previews_of
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import ChatFrame
from parley.server.throttle import Throttle

SYNC_LIMIT = 500


async def publish_update(broker: Broker, message: MessagePublic) -> None:
    """Tells the chat a stored message changed (edit, deletion, reactions)."""
    sender = message.sender.id if message.sender else None
    update = frames.MessageUpdated(message)
    await broker.publish(ChatFrame.of(message.chat_id, update, sender_id=sender))


async def commit_and_publish_update(
    session: AsyncSession, broker: Broker, message: Message
) -> MessagePublic:
    """Commits the message's change; its `message_updated` frame is published once the
    transaction commits (never if it does not). The message as stored."""
    await session.flush()
    public = await message_public(session, message)
    after_commit(session, lambda: publish_update(broker, public))
    await session.commit()
    return public


# --- reading -------------------------------------------------------------------------------


async def messages_public(
    session: AsyncSession,
    messages: Sequence[Message],
    *,
    reactions: bool = True,
    attachments: bool = True,
    ids_from: Select[int] | None = None,
) -> list[MessagePublic]:
    """Builds the public shape of many messages with up to four batched queries.

    A message just sent has no reactions yet and attachments only when some were linked,
    so the send path skips those queries; mentions are looked up only for texts with an `@`.
    `ids_from`, the query that selected the messages' ids, replaces long IN (...) lists
    (thousands of chats' last messages).
    """
    if not messages:
        return []
    ids: list[int] | Select[int] = [m.id for m in messages] if ids_from is None else ids_from
    sender_ids: set[int] | Select[int | None] = (
        {m.sender_id for m in messages if m.sender_id}
        if ids_from is None
        else select(Message.sender_id).where(Message.id.in_(ids_from))
    )
    senders = await senders_by_id(session, sender_ids)
    reactions_of = await _reactions(session, ids) if reactions else {}
    attachments_of = await _attachments(session, ids) if attachments else {}
    mentioned = await mentions_of(session, messages)
    previews = await previews_of(session, ids) if attachments else {}
    return [
        as_public(
            row_fields(
                m,
                sender=senders.get(m.sender_id) if m.sender_id else None,
                attachments=attachments_of.get(m.id, ()),
                reactions=reactions_of.get(m.id, {}),
                mentions=mentioned.get(m.id, ()),
                preview=previews.get(m.id),
            )
        )
        for m in messages
    ]


async def message_public(session: AsyncSession, message: Message) -> MessagePublic:
    return (await messages_public(session, [message]))[0]


async def senders_by_id(
    session: AsyncSession, ids: set[int] | Select[int | None]
) -> dict[int, SenderPublic]:
    """The users of `ids` as messages name them (those that still exist)."""
    if isinstance(ids, set) and not ids:
        return {}
    rows = await session.execute(
        select(User.id, User.username, User.display_name).where(User.id.in_(ids))
    )
    return {
        r.id: SenderPublic(id=r.id, username=r.username, display_name=r.display_name) for r in rows
    }


async def _reactions(
    session: AsyncSession, ids: list[int] | Select[int]
) -> dict[int, dict[str, list[int]]]:
    """Per message, each emoji's users, in the order they reacted."""
    rows = await session.execute(
        select(Reaction.message_id, Reaction.emoji, Reaction.user_id)
        .where(Reaction.message_id.in_(ids))
        .order_by(Reaction.created_at, Reaction.user_id)
    )
    grouped: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for message_id, emoji, user_id in rows:
        grouped[message_id].setdefault(emoji, []).append(user_id)
    return grouped


async def _attachments(
    session: AsyncSession, ids: list[int] | Select[int]
) -> dict[int, list[AttachmentPublic]]:
    rows = await session.execute(
        select(Attachment).where(Attachment.message_id.in_(ids)).order_by(Attachment.id)
    )
    grouped: dict[int, list[AttachmentPublic]] = defaultdict(list)
    for a in rows.scalars():
        grouped[a.message_id or 0].append(attachment_public(a))
    return grouped


async def hidden_senders(
    session: AsyncSession, chat: Chat, user_id: int, now: datetime
) -> tuple[int, ...]:
    """The senders whose messages the user does not see in `chat`: the users it blocks,
    outside direct chats."""
    if chat.type == "direct":
        return ()
    return tuple(await blocked_ids(session, user_id, now=now))


async def list_messages(
    session: AsyncSession,
    *,
    user_id: int,
    chat_id: int,
    paging: Paging,
    now: datetime,
) -> list[MessagePublic]:
    """History in ascending seq, a page as `paging` says.

    The REST route serves the same page encoded, from memory (`history.history_page`)."""
    paging.check()
    chat, _ = await access_chat(session, user_id=user_id, chat_id=chat_id)
    hidden = await hidden_senders(session, chat, user_id, now)
    rows = await load_page(session, chat_id=chat_id, hidden=hidden, paging=paging)
    return [MessagePublic.model_validate(row) for row in rows]


async def list_mentions(
    session: AsyncSession, *, user_id: int, limit: int, before: int | None = None, now: datetime
) -> list[MessagePublic]:
    """Messages that mention the user, newest first (by id; `before` is a message id cursor).

    Only chats the user is still a member of; outside direct chats, none from users it
    blocks, as in history. Deleted messages have no mentions left.
    """
    query = (
        select(Message)
        .join(MessageMention, MessageMention.message_id == Message.id)
        .join(
            Membership,
            (Membership.chat_id == MessageMention.chat_id) & (Membership.user_id == user_id),
        )
        .where(MessageMention.user_id == user_id)
        .order_by(MessageMention.message_id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(MessageMention.message_id < before)
    hidden = await blocked_ids(session, user_id, now=now)
    if hidden:
        query = query.join(Chat, Chat.id == MessageMention.chat_id).where(
            or_(
                Chat.type == "direct", Message.sender_id.is_(None), Message.sender_id.not_in(hidden)
            )
        )
    return await messages_public(session, list((await session.execute(query)).scalars()))


async def missed_in_chats(
    session: AsyncSession, *, user_id: int, seen: Mapping[int, int], now: datetime
) -> list[tuple[int, list[MessagePublic], bool]]:
    """What a reconnecting client missed in the chats `seen` names (chat → the last seq it
    saw): for each one it is a member of, in `seen`'s order, up to SYNC_LIMIT newest
    messages after that seq (outside direct chats none from users it blocks), and whether
    they were cut. A fixed number of queries however many chats: a reconnect storm runs
    thousands of these, and a query per chat was most of its cost."""
    kinds = dict(
        (
            await session.execute(
                select(Chat.id, Chat.type)
                .join(Membership, (Membership.chat_id == Chat.id) & (Membership.user_id == user_id))
                .where(Chat.id.in_(list(seen)))
            )
        )
        .tuples()
        .all()
    )
    if not kinds:
        return []
    groups = [kind for kind in kinds.values() if kind != "direct"]
    hidden = await blocked_ids(session, user_id, now=now) if groups else []
    newest = []
    for chat_id, kind in kinds.items():
        query = select(Message.id).where(Message.chat_id == chat_id, Message.seq > seen[chat_id])
        if hidden and kind != "direct":
            query = query.where(Message.sender_id.not_in(hidden))
        page = query.order_by(Message.seq.desc()).limit(SYNC_LIMIT + 1).subquery()
        newest.append(select(page.c.id))
    rows = (
        await session.execute(
            select(Message).where(Message.id.in_(union_all(*newest))).order_by(Message.seq)
        )
    ).scalars()
    by_chat: dict[int, list[Message]] = defaultdict(list)
    for message in rows:
        by_chat[message.chat_id].append(message)
    # Cut chats lose their oldest row: the one past SYNC_LIMIT that tells they were cut.
    kept = {chat_id: found[-SYNC_LIMIT:] for chat_id, found in by_chat.items()}
    public = iter(await messages_public(session, [m for found in kept.values() for m in found]))
    decorated = {chat_id: [next(public) for _ in found] for chat_id, found in kept.items()}
    return [
        (chat_id, decorated.get(chat_id, []), len(by_chat.get(chat_id, ())) > SYNC_LIMIT)
        for chat_id in seen
        if chat_id in kinds
    ]


async def chats_with_news(session: AsyncSession, *, user_id: int, seen: dict[int, int]) -> set[int]:
    """Of the chats a reconnecting client names (chat → the last seq it saw), those it is
    a member of that have a later seq: one query for a whole `sync`. After a restart most
    clients missed nothing, and each chat's full read is several queries."""
    news: set[int] = set()
    ids = list(seen)
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(Chat.id, Chat.last_seq)
            .join(Membership, (Membership.chat_id == Chat.id) & (Membership.user_id == user_id))
            .where(Chat.id.in_(ids[start : start + 500]))
        )
        news.update(chat_id for chat_id, last in rows.tuples() if last > seen[chat_id])
    return news


async def access_message(
    session: AsyncSession, *, user_id: int, message_id: int, now: datetime
) -> Message:
    """A message of a chat the user may read; NotFound otherwise (existence is not leaked)."""
    message = await session.get(Message, message_id)
    if message is None:
        raise errors.NotFound("No such message", code="message_not_found")
    try:
        chat, _ = await access_chat(session, user_id=user_id, chat_id=message.chat_id)
    except errors.NotFound:
        raise errors.NotFound("No such message", code="message_not_found") from None
    if chat.type != "direct" and message.sender_id in await blocked_ids(session, user_id, now=now):
        raise errors.NotFound("No such message", code="message_not_found")
    return message


# --- writing -------------------------------------------------------------------------------


class Send(TypedDict, total=False):
    """A send's keywords, as `submit_send` takes them."""

    user_id: Required[int]
    chat_id: Required[int]
    content: Required[str]
    client_id: str | None
    reply_to: int | None
    attachment_ids: Sequence[int]
    thread_root_id: int | None
    also_in_chat: bool


def send_of(body: SendFields, *, user_id: int, chat_id: int) -> Send:
    """The send a REST body or a `send` frame asks for, as `do_send` and `submit_send` take
    it (the fields of `SendFields`, by name)."""
    fields = {name: getattr(body, name) for name in SendFields.model_fields}
    return cast(Send, {"user_id": user_id, "chat_id": chat_id, **fields})


async def do_send(
    writer: Writer,
    checks: SendChecks,
    throttle: Throttle,
    *,
    metrics: ServerMetrics | None = None,
    **send: Unpack[Send],
) -> tuple[MessagePublic, bool]:
    """The send path every transport shares: checks, then store (batched) and publish.

    Returns after the commit: (the message, True), or (the stored one, False) for a resend
    with a client_id already used (the unique (sender, client_id) decides).
    """
    started = time.perf_counter()
    future = await submit_send(writer, checks, throttle, **send)
    message, created = await future
    if metrics is not None:
        metrics.record_send(time.perf_counter() - started, created=created)
    return message, created


async def submit_send(
    writer: Writer,
    checks: SendChecks,
    throttle: Throttle,
    *,
    user_id: int,
    chat_id: int,
    content: str,
    client_id: str | None = None,
    reply_to: int | None = None,
    attachment_ids: Sequence[int] = (),
    thread_root_id: int | None = None,
    also_in_chat: bool = False,
    alive: Callable[[], bool] | None = None,
) -> asyncio.Future[Result]:
    """Checks a send (limits, membership, blocks, ban: from memory) and queues it for the
    writer; the future resolves after the commit. Raises before queueing when refused,
    Overloaded when the writer cannot take it within a second."""
    await throttle.hit("send", user_id)
    member = await checks.check_send(user_id=user_id, chat_id=chat_id)
    if reply_to is not None or thread_root_id is not None:
        async with checks.sessions() as session:
            if reply_to is not None:
                await _check_reply(session, chat_id=chat_id, reply_to=reply_to)
            if thread_root_id is not None:
                thread_root_id = await check_thread_root(
                    session,
                    user_id=user_id,
                    chat_id=chat_id,
                    message_id=thread_root_id,
                    now=writer.clock(),
                )
    draft = Draft(
        user_id=user_id,
        chat_id=chat_id,
        content=content,
        client_id=client_id,
        reply_to=reply_to,
        attachment_ids=tuple(attachment_ids),
        sender=await checks.sender(user_id),
        chat_type=member.chat_type,
        role=member.role,
        alive=alive,
        thread_root_id=thread_root_id,
        also_in_chat=also_in_chat and thread_root_id is not None,
    )
    return await writer.submit(draft)


async def _check_reply(session: AsyncSession, *, chat_id: int, reply_to: int) -> None:
    target = await session.get(Message, reply_to)
    if target is None or target.chat_id != chat_id:
        raise errors.ValidationFailed("reply_to must be a message of the same chat")
    check_not_notice(target, "replied to")


async def check_thread_root(
    session: AsyncSession, *, user_id: int, chat_id: int, message_id: int, now: datetime
) -> int:
    """The root of the thread a reply to `message_id` goes to (a reply's root for a reply).
    ValidationFailed for a missing message, a deleted root or one of another chat the
    user may read; NotFound for a message the user may not see."""
    target = await session.get(Message, message_id)
    if target is None:
        raise errors.ValidationFailed("thread_root_id must be a message of this chat")
    if target.chat_id != chat_id:
        # Its existence is told only to whoever may read it.
        await access_message(session, user_id=user_id, message_id=message_id, now=now)
        raise errors.ValidationFailed("thread_root_id must be a message of this chat")
    if getattr(target, "kind", "message") == "notice":  # `kind`: another feature's column
        raise errors.ValidationFailed("thread_root_id: a notice has no thread")
    root = (
        target
        if target.thread_root_id is None
        else await session.get(Message, target.thread_root_id)
    )
    if root is None or root.deleted_at is not None:
        raise errors.ValidationFailed("thread_root_id: the thread's root was deleted")
    return root.id


async def edit_message(
    session: AsyncSession,
    broker: Broker,
    *,
    user_id: int,
    message_id: int,
    content: str,
    now: datetime,
) -> MessagePublic:
    """Author only; a deleted message cannot be edited."""
    message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    check_not_notice(message, "edited")
    if message.sender_id != user_id:
        raise errors.Forbidden("Only the author can edit a message", code="not_author")
    if message.deleted_at is not None:
        raise errors.Conflict("The message was deleted", code="message_deleted")
    if message.content == content:  # changes nothing: nothing written, nothing told
        return await message_public(session, message)
    message.content, message.edited_at = content, now
    message.search_text = await search_text_of(session, message)
    await _update_mentions(session, message, editor_id=user_id)
    return await commit_and_publish_update(session, broker, message)


async def _update_mentions(session: AsyncSession, message: Message, *, editor_id: int) -> None:
    """Mentions follow the edited text, with the editor's role now (for `@all`)."""
    chat = await session.get(Chat, message.chat_id)
    membership = await session.get(Membership, (message.chat_id, editor_id))
    await replace_mentions(
        session,
        message,
        chat_type=chat.type if chat else "direct",
        role=membership.role if membership else None,
    )


async def delete_message(
    session: AsyncSession, broker: Broker, *, user_id: int, message_id: int, now: datetime
) -> MessagePublic:
    """The author, or the chat's owner/admin. Content is removed; the seq stays.

    Deleting a deleted message is harmless: nothing is written or told."""
    message = await access_message(session, user_id=user_id, message_id=message_id, now=now)
    if message.deleted_at is not None:
        return await message_public(session, message)
    if message.sender_id != user_id:
        _, membership = await access_member(session, user_id=user_id, chat_id=message.chat_id)
        if membership.role not in {"owner", "admin"}:
            raise errors.Forbidden("You cannot delete this message", code="not_author")
        details = {"chat_id": message.chat_id, "sender_id": message.sender_id}
        await audit(session, user_id, "message.delete", "message", message.id, details, at=now)
    await erase_message(session, message, now=now)
    return await commit_and_publish_update(session, broker, message)


async def erase_message(session: AsyncSession, message: Message, *, now: datetime) -> None:
    """Leaves a `deleted` placeholder (the seq stays): content, reactions and mentions go
    (and with the content its search entry). No commit; no permission check."""
    message.content, message.deleted_at, message.search_text = "", now, ""
    message.pinned_at = message.pinned_by = None
    await session.execute(delete(Reaction).where(Reaction.message_id == message.id))
    await session.execute(delete(MessagePreview).where(MessagePreview.message_id == message.id))
    await clear_mentions(session, message.id)


async def erase_messages(session: AsyncSession, ids: Sequence[int], *, now: datetime) -> None:
    """`erase_message` for many at once (retention). No commit."""
    await session.execute(
        update(Message)
        .where(Message.id.in_(ids))
        .values(content="", deleted_at=now, search_text="", pinned_at=None, pinned_by=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(Reaction).where(Reaction.message_id.in_(ids)))
    await session.execute(delete(MessagePreview).where(MessagePreview.message_id.in_(ids)))
    await session.execute(delete(MessageMention).where(MessageMention.message_id.in_(ids)))
