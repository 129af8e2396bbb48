"""What the send path checks, from memory: membership, direct-chat peers, blocks, bans and
sender profiles, per server process.

Entries are loaded from the database on a miss and forgotten when the broker announces a
change (`SendChecks.on_event`, fed by the hub with every event, from any process), so
they stay exact with several processes on Redis. Only positive memberships are kept (a
refused send asks the database again), and a load that raced with an announcement is
not stored (the generation counter). Timed blocks and bans carry their expiry, so they
end on time even before the sweep announces it. A broker reconnect (`Resync`) empties
everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.clock import Clock
from parley.server.accounts.schemas import SenderPublic
from parley.server.chats.access import access_member
from parley.server.db.models import Ban, Block, Membership, User
from parley.server.db.models import Session as LoginSession
from parley.server.realtime import events

MAX_ENTRIES = 200_000  # per map; past it the map starts afresh (bounded memory)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Member:
    chat_type: str
    role: str


class SendChecks:
    """The per-process caches of the send path, and the checks built on them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions, self.clock = sessions, clock
        self.members: dict[int, dict[int, Member]] = {}  # chat → user → membership
        self.peers: dict[int, tuple[int, ...]] = {}  # direct chat → its members
        self.blocks: dict[int, dict[int, datetime | None]] = {}  # blocker → blocked → until
        self.bans: dict[int, datetime | bool | None] = {}  # user → until (None: forever)
        self.senders: dict[int, SenderPublic] = {}
        self.chats_of: dict[int, frozenset[int]] = {}  # user → the chats it is a member of
        self.sizes: dict[int, int] = {}  # chat → how many members it has
        self.generation = 0
        self.misses = 0

    # --- the checks -------------------------------------------------------------------

    async def check_send(self, *, user_id: int, chat_id: int) -> Member:
        """Raises what the database would: UserBanned, NotFound, NotMember, Blocked."""
        if await self.banned(user_id):
            raise errors.UserBanned()
        member = await self.member(user_id=user_id, chat_id=chat_id)
        if member.chat_type == "direct":
            peers = await self._load(
                self.peers, chat_id, partial(_direct_members, chat_id=chat_id), _any
            )
            for peer in peers:
                if peer != user_id and await self.blocked_either(user_id, peer):
                    raise errors.Blocked()
        return member

    async def chat_size(self, chat_id: int) -> int:
        """How many members a chat has (who hears typing depends on it)."""
        return await self._load(self.sizes, chat_id, partial(_member_count, chat_id=chat_id), _any)

    async def member(self, *, user_id: int, chat_id: int) -> Member:
        known = self.members.get(chat_id, {}).get(user_id)
        if known is not None:
            return known
        generation = self.generation
        self.misses += 1
        async with self.sessions() as session:
            chat, membership = await access_member(session, user_id=user_id, chat_id=chat_id)
        member = Member(chat.type, membership.role)
        if generation == self.generation:
            if sum(len(m) for m in self.members.values()) > MAX_ENTRIES:
                self.members.clear()
            self.members.setdefault(chat_id, {})[user_id] = member
        return member

    async def reader(self, *, user_id: int, chat_id: int) -> Member | None:
        """May the user read the chat (`access_chat`): its membership, None for a public
        chat it has not joined (asked of the database each time); NotFound otherwise."""
        try:
            return await self.member(user_id=user_id, chat_id=chat_id)
        except errors.NotMember:  # `access_member`'s answer for a public chat not joined
            return None

    async def hidden(self, user_id: int) -> tuple[int, ...]:
        """The users this user blocks now (whose messages it does not see in groups)."""
        mine = await self._load(self.blocks, user_id, partial(blocks_of, user_id=user_id), _any)
        if not mine:
            return ()
        now = self.clock()
        return tuple(sorted(b for b, until in mine.items() if until is None or until > now))

    async def banned(self, user_id: int) -> bool:
        until = await self._load(self.bans, user_id, partial(_ban, user_id=user_id), _any)
        if until is False:
            return False
        return until is None or (isinstance(until, datetime) and until > self.clock())

    async def blocked_either(self, a: int, b: int) -> bool:
        now = self.clock()
        for blocker, blocked in ((a, b), (b, a)):
            mine = await self._load(self.blocks, blocker, partial(blocks_of, user_id=blocker), _any)
            if blocked in mine:
                until = mine[blocked]
                if until is None or until > now:
                    return True
        return False

    async def sender(self, user_id: int) -> SenderPublic | None:
        found = self.senders.get(user_id)
        if found is not None:
            return found
        generation = self.generation
        async with self.sessions() as session:
            found = await _sender(session, user_id)
        if found is not None and generation == self.generation:
            if len(self.senders) > MAX_ENTRIES:
                self.senders.clear()
            self.senders[user_id] = found
        return found

    async def _load(
        self,
        cache: dict[int, T],
        key: int,
        load: Callable[[AsyncSession], Awaitable[T]],
        keep: Callable[[T], bool],
    ) -> T:
        if key in cache:
            return cache[key]
        generation = self.generation
        self.misses += 1
        async with self.sessions() as session:
            value = await load(session)
        if generation == self.generation and keep(value):
            if len(cache) > MAX_ENTRIES:
                cache.clear()
            cache[key] = value
        return value

    def prime(
        self,
        generation: int,
        *,
        user_id: int,
        memberships: Iterable[tuple[int, str, str]],
        peers: dict[int, tuple[int, ...]],
        blocks: dict[int, dict[int, datetime | None]],
        ban: datetime | bool | None,
        sender: SenderPublic,
    ) -> None:
        """Keeps what a WebSocket handshake read anyway (`memberships`: chat, type, role;
        `peers`: the members of its direct chats; `blocks`: the user's and its direct
        peers' blocks, by blocker), so that a first send asks nothing, on whichever
        process the peer is. `generation` is the one taken before reading: a change
        announced meanwhile discards it all, as a racing load is discarded."""
        if generation != self.generation:
            return
        if len(self.members) > MAX_ENTRIES or len(self.senders) > MAX_ENTRIES:
            self.clear()
        chats = set()
        for chat_id, chat_type, role in memberships:
            self.members.setdefault(chat_id, {})[user_id] = Member(chat_type, role)
            chats.add(chat_id)
        self.peers.update(peers)
        if len(self.blocks) > MAX_ENTRIES:
            self.blocks.clear()
        self.blocks.update(blocks)
        self.bans[user_id] = ban
        self.senders[user_id] = sender
        if len(self.chats_of) > MAX_ENTRIES:
            self.chats_of.clear()
        self.chats_of[user_id] = frozenset(chats)

    def socket_view(self, user_id: int) -> tuple[frozenset[int], dict[int, datetime | None]] | None:
        """The user's chats and blocks as a handshake primed them (None when either was
        forgotten since): a user's next socket reads nothing more than its principal."""
        chats, blocks = self.chats_of.get(user_id), self.blocks.get(user_id)
        if chats is None or blocks is None:
            return None
        return chats, blocks

    # --- kept exact by the events that announce changes -------------------------------

    def on_event(self, event: events.Event) -> None:
        match event:
            case (
                events.MembershipChanged(chat_id=chat_id, user_ids=user_ids)
                | events.RolesChanged(chat_id=chat_id, user_ids=user_ids)
            ):
                self.sizes.pop(chat_id, None)
                chat = self.members.get(chat_id, {})
                for user_id in user_ids:
                    chat.pop(user_id, None)
                    self.chats_of.pop(user_id, None)
            case events.ChatRemoved(chat_id=chat_id):
                self.members.pop(chat_id, None)
                self.peers.pop(chat_id, None)
                self.sizes.pop(chat_id, None)
                for user_id in [u for u, chats in self.chats_of.items() if chat_id in chats]:
                    del self.chats_of[user_id]
            case events.BlocksChanged(user_id=user_id):
                self.blocks.pop(user_id, None)
            case (
                events.SessionsEnded(user_id=user_id, banned=True)
                | events.Unbanned(user_id=user_id)
            ):
                self.bans.pop(user_id, None)
            case events.ProfileChanged(user_id=user_id):
                self.senders.pop(user_id, None)
                self.bans.pop(user_id, None)
            case events.Resync():
                self.clear()
            case _:
                return
        self.generation += 1

    def clear(self) -> None:
        caches = (
            self.members, self.peers, self.blocks, self.bans, self.senders, self.chats_of,
            self.sizes,
        )  # fmt: skip
        for cache in caches:
            cache.clear()
        self.generation += 1


def _any(_value: object) -> bool:
    return True


async def _member_count(session: AsyncSession, *, chat_id: int) -> int:
    count = select(func.count()).select_from(Membership).where(Membership.chat_id == chat_id)
    return int((await session.execute(count)).scalar_one())


async def _direct_members(session: AsyncSession, *, chat_id: int) -> tuple[int, ...]:
    rows = await session.execute(select(Membership.user_id).where(Membership.chat_id == chat_id))
    return tuple(rows.scalars())


async def blocks_of(session: AsyncSession, *, user_id: int) -> dict[int, datetime | None]:
    return (await blocks_by(session, [user_id]))[user_id]


async def blocks_by(
    session: AsyncSession, user_ids: Iterable[int]
) -> dict[int, dict[int, datetime | None]]:
    """Each user's blocks (blocked → until; empty when none), in one query."""
    found: dict[int, dict[int, datetime | None]] = {user_id: {} for user_id in user_ids}
    rows = await session.execute(
        select(Block.blocker_id, Block.blocked_id, Block.expires_at).where(
            Block.blocker_id.in_(list(found))
        )
    )
    for r in rows:
        found[r.blocker_id][r.blocked_id] = r.expires_at
    return found


async def _ban(session: AsyncSession, *, user_id: int) -> datetime | bool | None:
    row = (
        await session.execute(select(Ban.user_id, Ban.expires_at).where(Ban.user_id == user_id))
    ).first()
    return False if row is None else row.expires_at


async def _sender(session: AsyncSession, user_id: int) -> SenderPublic | None:
    row = (
        await session.execute(
            select(User.id, User.username, User.display_name).where(User.id == user_id)
        )
    ).first()
    if row is None:
        return None
    return SenderPublic(id=row.id, username=row.username, display_name=row.display_name)


class LoginSessions:
    """The live login sessions REST requests came with, per process: who authenticates
    without a query.

    A session is remembered after the database said it is live (not revoked, not expired,
    its user there); its expiry is checked on every use. `SessionsEnded` (logout, revoked
    sessions, a password change, a ban: from any process) forgets the sessions it names,
    a user's all when it names none; `Resync` forgets everything. A load that raced with
    such an event is not stored (the generation counter).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions, self.clock = sessions, clock
        # the token's sid → (user, the session's row id, expires_at)
        self.live: dict[str, tuple[int, int, datetime]] = {}
        self.of_user: dict[int, dict[int, str]] = {}  # user → {row id: sid}
        self.generation = 0
        self.misses = 0

    async def check(self, *, user_id: int, sid: str) -> int:
        """The session's row id; raises Unauthorized as `deps.load_principal` does: unknown,
        or ended."""
        known = self.live.get(sid)
        if known is None:
            known = await self._load(user_id=user_id, sid=sid)
        owner, session_id, expires_at = known
        if owner != user_id:
            raise errors.Unauthorized("Session not found")
        if expires_at <= self.clock():
            raise errors.Unauthorized("Session has ended")
        return session_id

    async def _load(self, *, user_id: int, sid: str) -> tuple[int, int, datetime]:
        generation = self.generation
        self.misses += 1
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(LoginSession.id, LoginSession.revoked_at, LoginSession.expires_at)
                    .join(User, User.id == LoginSession.user_id)
                    .where(LoginSession.sid == sid, LoginSession.user_id == user_id)
                )
            ).first()
        if row is None:
            raise errors.Unauthorized("Session not found")
        if row.revoked_at is not None or row.expires_at <= self.clock():
            raise errors.Unauthorized("Session has ended")
        if generation == self.generation:
            if len(self.live) > MAX_ENTRIES:
                self.clear()
            self.live[sid] = (user_id, row.id, row.expires_at)
            self.of_user.setdefault(user_id, {})[row.id] = sid
        return user_id, row.id, row.expires_at

    def on_event(self, event: events.Event) -> None:
        match event:
            case events.SessionsEnded(user_id=user_id, session_ids=ids, keep=keep):
                mine = self.of_user.get(user_id, {})
                ended = set(mine) if ids is None else set(mine) & set(ids)
                if keep is not None:
                    ended.discard(keep)
                for session_id in ended:
                    self.live.pop(mine.pop(session_id), None)
                if not mine:
                    self.of_user.pop(user_id, None)
            case events.Resync():
                self.clear()
                return
            case _:
                return
        self.generation += 1

    def clear(self) -> None:
        self.live.clear()
        self.of_user.clear()
        self.generation += 1
