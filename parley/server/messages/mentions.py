"""Mentions: the members a message names (`@username`, `@all`), resolved when it is stored or
edited, and the queries over them (a message's mentions, my unread mentions, my mentions).

The rules (docs/api.md, "Mentions"):
- a mention is `@` then a username; the `@` must not follow a letter or digit, so
  `bob@example.com` names nobody; names match ignoring case, as usernames are unique so;
- trailing `.`, `-` or `_` belong to the name only when a member is called so: `@bob.` is bob;
- nothing inside inline code or a fenced code block is a mention;
- in a group or channel `@all` names every member when its sender is the chat's owner or an
  admin, and nobody when anyone else writes it; in a direct chat `all` is an ordinary name;
- only members are mentioned, and never the sender; the first MAX_NAMES distinct names count,
  and no more than MAX_KEYS spellings of them (`@bob..` may be `bob..`, `bob.` or `bob`).

The members are looked up with the names in one array parameter (PostgreSQL) or one JSON
parameter (SQLite), LOOKUP_KEYS names per statement at most: never one statement, or one
bound parameter, per name, so no batch of texts makes a statement the database refuses.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy import Select, delete, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.db.batch import Written
from parley.server.db.models import Chat, Membership, Message, MessageMention

EVERYONE = "all"
MANAGERS = frozenset({"owner", "admin"})
MAX_NAMES = 50  # distinct `@` tokens per message
MAX_KEYS = 100  # usernames those tokens may be, per message (trailing `._-` multiply them)
LOOKUP_KEYS = 5000  # (chat, username) pairs per lookup statement; a batch takes several
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_TOKEN = re.compile(r"(?<![^\W_])@([A-Za-z0-9_.\-]+)")
_TRAILING = "._-"
S = TypeVar("S", bound="Send")


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
    budget = MAX_KEYS
    for match in _TOKEN.finditer(_CODE.sub(" ", content)):
        raw = match.group(1).lower()
        if chat_type != "direct" and raw.rstrip(_TRAILING) == EVERYONE:
            everyone = everyone or role in MANAGERS
        elif raw not in tokens and len(tokens) < MAX_NAMES and (candidates := _candidates(raw)):
            if len(candidates) > budget:
                budget = 0  # later names do not count either: the first ones win
                continue
            tokens[raw] = candidates
            budget -= len(candidates)
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
    members = await members_named(session, {message.chat_id: named})
    ids = resolve_mentions(named, members.get(message.chat_id, {}), sender_id=message.sender_id)
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


# Per dialect, one statement: the members of the `everyone` chats, then those of the
# (chat, username key) pairs, each list in one parameter whatever its length.
_MEMBERS_NAMED = {
    "postgresql": text(
        """SELECT m.chat_id, u.username_key, u.id FROM memberships m
JOIN users u ON u.id = m.user_id WHERE m.chat_id = ANY(CAST(:everyone AS bigint[]))
UNION ALL
SELECT m.chat_id, u.username_key, u.id
FROM unnest(CAST(:chats AS bigint[]), CAST(:keys AS text[])) AS w(chat_id, username_key)
JOIN users u ON u.username_key = w.username_key
JOIN memberships m ON m.chat_id = w.chat_id AND m.user_id = u.id"""
    ),
    "sqlite": text(
        """SELECT m.chat_id, u.username_key, u.id FROM memberships m
JOIN users u ON u.id = m.user_id WHERE m.chat_id IN (SELECT value FROM json_each(:everyone))
UNION ALL
SELECT m.chat_id, u.username_key, u.id FROM json_each(:pairs) j
JOIN users u ON u.username_key = json_extract(j.value, '$[1]')
JOIN memberships m ON m.chat_id = json_extract(j.value, '$[0]') AND m.user_id = u.id"""
    ),
}


async def members_named(
    session: AsyncSession, wanted: Mapping[int, Named]
) -> dict[int, dict[str, int]]:
    """For new or edited messages (chat id -> what they name, merged per chat): each chat's
    members by username key, all of them where `everyone`, else those named. One query per
    LOOKUP_KEYS names, for `resolve_mentions` to pick from."""
    everyone = [chat_id for chat_id, named in wanted.items() if named.everyone]
    pairs = [
        (chat_id, key)
        for chat_id, named in wanted.items()
        if not named.everyone
        for key in sorted(named.keys)
    ]
    dialect = (await session.connection()).dialect.name
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for start in range(0, max(len(pairs), 1), LOOKUP_KEYS):
        chunk = pairs[start : start + LOOKUP_KEYS]
        params = _lookup_params(dialect, everyone if start == 0 else [], chunk)
        for chat_id, key, user_id in await session.execute(_MEMBERS_NAMED[dialect], params):
            found[chat_id][key] = user_id
    return found


def _lookup_params(
    dialect: str, everyone: list[int], pairs: list[tuple[int, str]]
) -> dict[str, object]:
    if dialect == "postgresql":
        return {
            "everyone": everyone,
            "chats": [chat_id for chat_id, _ in pairs],
            "keys": [key for _, key in pairs],
        }
    return {"everyone": json.dumps(everyone), "pairs": json.dumps(pairs)}


class Send(Written, Protocol):
    """What resolving a new message's mentions needs of its send (`@all` needs the role)."""

    @property
    def chat_type(self) -> str: ...
    @property
    def role(self) -> str | None: ...


async def mentions_by_send(session: AsyncSession, sends: Sequence[S]) -> dict[S, list[int]]:
    """Who each send of a batch mentions (those naming someone only): one lookup for the
    whole batch, only when some text names someone (a resend's lookup is wasted, and
    harmless)."""
    named = {
        s: n
        for s in sends
        if "@" in s.content and (n := parse_mentions(s.content, chat_type=s.chat_type, role=s.role))
    }
    if not named:
        return {}
    per_chat: dict[int, Named] = {}
    for s, n in named.items():
        seen = per_chat.get(s.chat_id, Named())
        per_chat[s.chat_id] = Named(seen.tokens + n.tokens, seen.everyone or n.everyone)
    members = await members_named(session, per_chat)
    return {
        s: ids
        for s, n in named.items()
        if (ids := resolve_mentions(n, members.get(s.chat_id, {}), sender_id=s.user_id))
    }


async def replace_mentions(
    session: AsyncSession, message: Message, *, chat_type: str, role: str | None
) -> list[int]:
    """After an edit: the old mentions go, the new text's are stored (no commit)."""
    await clear_mentions(session, message.id)
    return await store_mentions(session, message, chat_type=chat_type, role=role)


async def clear_mentions(session: AsyncSession, message_id: int) -> None:
    await session.execute(delete(MessageMention).where(MessageMention.message_id == message_id))


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
