"""Mentions: the members a message names (`@username`, `@all`), resolved when it is stored or
edited, and the queries over them (a message's mentions, my unread mentions, my mentions).

The rules (docs/api.md, "Mentions"):
- a mention is `@` then a username; the `@` must not follow a letter or digit, so
  `bob@example.com` names nobody; names match ignoring case, as usernames are unique so;
- trailing `.`, `-` or `_` belong to the name only when a member is called so: `@bob.` is bob;
- nothing inside inline code or a fenced code block is a mention;
- in a group or channel `@all` names every member when its sender is the chat's owner or an
  admin, and nobody when anyone else writes it; in a direct chat `all` is an ordinary name;
- only members are mentioned, and never the sender; the first MAX_NAMES distinct names count.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, delete, func, insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.models import Chat, Membership, Message, MessageMention, User

EVERYONE = "all"
MANAGERS = frozenset({"owner", "admin"})
MAX_NAMES = 50
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_TOKEN = re.compile(r"(?<![^\W_])@([A-Za-z0-9_.\-]+)")
_TRAILING = "._-"


@dataclass(frozen=True, slots=True)
class Named:
    """What a message's text names: per `@token`, the username keys it may be (longest first),
    and whether it mentions everyone (an `@all` its sender had the right to write)."""

    tokens: tuple[tuple[str, ...], ...] = ()
    everyone: bool = False

    @property
    def keys(self) -> set[str]:
        return {key for candidates in self.tokens for key in candidates}

    def __bool__(self) -> bool:
        return self.everyone or bool(self.tokens)


def parse_mentions(content: str, *, chat_type: str, role: str | None) -> Named:
    """Pure: the names a text mentions, before knowing who the members are."""
    if "@" not in content:
        return Named()
    tokens: dict[str, tuple[str, ...]] = {}
    everyone = False
    for match in _TOKEN.finditer(_CODE.sub(" ", content)):
        raw = match.group(1).lower()
        if chat_type != "direct" and raw.rstrip(_TRAILING) == EVERYONE:
            everyone = everyone or role in MANAGERS
        elif raw not in tokens and len(tokens) < MAX_NAMES and (candidates := _candidates(raw)):
            tokens[raw] = candidates
    return Named(tuple(tokens.values()), everyone)


def _candidates(raw: str) -> tuple[str, ...]:
    """`bob._` may be the user `bob._`, `bob.` or `bob`: longest first, valid lengths only."""
    stem = len(raw.rstrip(_TRAILING))
    return tuple(raw[:n] for n in range(min(len(raw), 32), max(stem, 3) - 1, -1))


def resolve_mentions(named: Named, members: Mapping[str, int], *, sender_id: int) -> list[int]:
    """Pure: the ids mentioned, given the chat's members by username key (every member when
    `named.everyone`, else at least those named). Sorted; never the sender."""
    ids = set(members.values()) if named.everyone else set()
    for candidates in named.tokens:
        found = next((members[key] for key in candidates if key in members), None)
        if found is not None:
            ids.add(found)
    ids.discard(sender_id)
    return sorted(ids)


# --- storage -------------------------------------------------------------------------------


async def store_mentions(
    session: AsyncSession, message: Message, *, chat_type: str, role: str | None
) -> list[int]:
    """Resolves and saves a new message's mentions in the caller's transaction (no commit).

    A message without `@` costs nothing; one with names costs a query and an insert.
    """
    named = parse_mentions(message.content, chat_type=chat_type, role=role)
    if not named or message.sender_id is None:
        return []
    members = await _members(session, message.chat_id, None if named.everyone else named.keys)
    ids = resolve_mentions(named, members, sender_id=message.sender_id)
    seq = message.seq
    if ids:
        await session.execute(
            insert(MessageMention),
            [
                {"message_id": message.id, "user_id": uid, "chat_id": message.chat_id, "seq": seq}
                for uid in ids
            ],
        )
    return ids


_MEMBERS_NAMED = (  # built once: the batch's values go in expanding parameters
    select(Membership.chat_id, User.username_key, User.id)
    .join(User, User.id == Membership.user_id)
    .where(
        or_(
            Membership.chat_id.in_(bindparam("everyone", expanding=True)),
            tuple_(Membership.chat_id, User.username_key).in_(bindparam("pairs", expanding=True)),
        )
    )
)


async def members_named(
    session: AsyncSession, wanted: Mapping[int, Named]
) -> dict[int, dict[str, int]]:
    """For a batch of new messages (chat id -> what one of them names, merged per chat): each
    chat's members by username key, all of them where `everyone`, else those named. One
    query, for `resolve_mentions` to pick from."""
    everyone = [chat_id for chat_id, named in wanted.items() if named.everyone]
    pairs = [
        (chat_id, key)
        for chat_id, named in wanted.items()
        if not named.everyone
        for key in named.keys
    ]
    rows = await session.execute(_MEMBERS_NAMED, {"everyone": everyone, "pairs": pairs})
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for chat_id, key, user_id in rows:
        found[chat_id][key] = user_id
    return found


async def replace_mentions(
    session: AsyncSession, message: Message, *, chat_type: str, role: str | None
) -> list[int]:
    """After an edit: the old mentions go, the new text's are stored (no commit)."""
    await clear_mentions(session, message.id)
    return await store_mentions(session, message, chat_type=chat_type, role=role)


async def clear_mentions(session: AsyncSession, message_id: int) -> None:
    await session.execute(delete(MessageMention).where(MessageMention.message_id == message_id))


async def _members(session: AsyncSession, chat_id: int, keys: set[str] | None) -> dict[str, int]:
    """The chat's members by username key: all of them, or only those with these keys."""
    query = (
        select(User.username_key, User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.chat_id == chat_id)
    )
    if keys is not None:
        query = query.where(User.username_key.in_(keys))
    return dict((await session.execute(query)).tuples().all())


# --- reading -------------------------------------------------------------------------------


async def mentions_of(session: AsyncSession, messages: Sequence[Message]) -> dict[int, list[int]]:
    """Each message's mentioned user ids; only messages whose text has an `@` can have any."""
    ids = [m.id for m in messages if "@" in m.content and m.deleted_at is None]
    if not ids:
        return {}
    rows = await session.execute(
        select(MessageMention.message_id, MessageMention.user_id)
        .where(MessageMention.message_id.in_(ids))
        .order_by(MessageMention.message_id, MessageMention.user_id)
    )
    grouped: dict[int, list[int]] = defaultdict(list)
    for message_id, user_id in rows.tuples():
        grouped[message_id].append(user_id)
    return grouped


async def unread_mention_counts(
    session: AsyncSession,
    *,
    user_id: int,
    chat_ids: Sequence[int] | Select[int],
    hidden: Sequence[int] = (),
) -> dict[int, int]:
    """Per chat, the messages past the user's read marker that mention it: one grouped query.

    `hidden`: senders the user blocks, whose messages it does not see outside direct chats.
    `chat_ids` may be a subquery (all of a user's chats: no long IN list).
    """
    if isinstance(chat_ids, Sequence) and not chat_ids:
        return {}
    query = (
        select(MessageMention.chat_id, func.count())
        .join(
            Membership,
            (Membership.chat_id == MessageMention.chat_id) & (Membership.user_id == user_id),
        )
        .where(
            MessageMention.user_id == user_id,
            MessageMention.chat_id.in_(chat_ids),
            MessageMention.seq > Membership.last_read_seq,
        )
        .group_by(MessageMention.chat_id)
    )
    if hidden:
        query = (
            query.join(Message, Message.id == MessageMention.message_id)
            .join(Chat, Chat.id == MessageMention.chat_id)
            .where(
                or_(
                    Chat.type == "direct",
                    Message.sender_id.is_(None),
                    Message.sender_id.not_in(hidden),
                )
            )
        )
    return dict((await session.execute(query)).tuples().all())
