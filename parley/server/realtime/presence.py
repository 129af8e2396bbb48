"""Presence: who is told when a user comes online or goes offline, and who may ask.

Pushed presence reaches only users sharing a direct chat or a small group (at most
`max_group` members) with the user, so N members of a large group coming online cost
O(N) work, not O(N²). Everyone else (channels, large groups) asks with `presence_query`.
A user's flips within `coalesce` seconds reach each recipient as one frame (the last
state, if it differs from the one announced before).

With several server processes, each one announces the connections it holds as
PresenceChanged events, so every hub knows who is online anywhere; the Redis set
`<prefix>presence:<process>` lets a process that starts later learn the current state.
Each process also keeps `<prefix>presence-alive:<process>` alive (a key with a TTL of
`process_ttl` seconds, refreshed every third of it): when a process dies without closing
(SIGKILL, a lost host) its key expires, the others forget its users, and one of them
(whoever takes `<prefix>presence-reap:<process>` first) announces them offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from parley.clock import Clock, Timer
from parley.server.db.models import Chat, Membership, User
from parley.server.realtime import frames
from parley.server.realtime.broker import Broker
from parley.server.realtime.events import PresenceChanged, UsersFrame
from parley.server.realtime.hub import Hub

log = logging.getLogger("parley.presence")
MAX_QUERY = 200
MAX_BATCH = 200  # presence announcements written (and their audiences asked) together


async def presence_audiences(
    session: AsyncSession, user_ids: Sequence[int], *, max_group: int
) -> dict[int, list[int]]:
    """For each user, who hears its presence: the users sharing a direct chat or a group of
    at most `max_group` members with it, in one query (a group's size is counted only for
    the groups these users are in)."""
    mine = aliased(Membership)
    other = aliased(Membership)
    counted = aliased(Membership)
    size = (
        select(func.count())
        .select_from(counted)
        .where(counted.chat_id == mine.chat_id)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(mine.user_id, other.user_id)
        .select_from(mine)
        .join(Chat, Chat.id == mine.chat_id)
        .join(other, other.chat_id == mine.chat_id)
        .where(
            mine.user_id.in_(set(user_ids)),
            other.user_id != mine.user_id,
            (Chat.type == "direct") | ((Chat.type == "group") & (size <= max_group)),
        )
        .distinct()
    )
    audiences: dict[int, list[int]] = {}
    for user_id, peer in rows:
        audiences.setdefault(user_id, []).append(peer)
    return audiences


async def shared_users(
    session: AsyncSession, user_id: int, candidates: Sequence[int]
) -> dict[int, datetime | None]:
    """Of `candidates`, the users sharing any chat with `user_id`, with their last_seen_at."""
    mine = aliased(Membership)
    other = aliased(Membership)
    rows = await session.execute(
        select(User.id, User.last_seen_at)
        .where(
            User.id.in_(set(candidates)),
            User.id.in_(
                select(other.user_id)
                .join(mine, mine.chat_id == other.chat_id)
                .where(mine.user_id == user_id)
            ),
        )
        .order_by(User.id)
    )
    return {r.id: r.last_seen_at for r in rows}


def presence_frame(user_id: int, online: bool, last_seen_at: datetime | None) -> str:
    return frames.Presence(
        user_id=user_id,
        status="online" if online else "offline",
        last_seen_at=last_seen_at.isoformat() if last_seen_at else None,
    ).encode()


@dataclass
class _Announced:
    online: bool
    at: float  # monotonic time of the announcement
    pending: Timer | None = None


_Pending = tuple[int, bool, datetime, "asyncio.Future[None]"]


class Presence:
    """Announces this process's presence flips; answers presence queries."""

    def __init__(
        self,
        *,
        hub: Hub,
        broker: Broker,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession] | None = None,
        clock: Clock,
        max_group: int = 100,
        coalesce: float = 1.0,
        redis: Any = None,
        prefix: str = "",
        process_ttl: float = 15.0,
    ) -> None:
        self.hub, self.broker, self.sessions, self.clock = hub, broker, sessions, clock
        # Audiences and queries only read: on SQLite without the write lock.
        self.reads = reads or sessions
        self.max_group, self.coalesce = max_group, coalesce
        self._redis, self._prefix = redis, prefix
        self._key = self._set_key(hub.process)
        self.process_ttl = process_ttl
        self.heartbeat_every = process_ttl / 3
        self._announced: dict[int, _Announced] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[_Pending] = []  # announcements waiting for the next batch
        self._writing: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """Presence is shared with other processes (through Redis)."""
        return self._redis is not None

    def _set_key(self, process: str) -> str:
        return f"{self._prefix}presence:{process}"

    def _alive_key(self, process: str) -> str:
        return f"{self._prefix}presence-alive:{process}"

    async def start(self) -> None:
        """Marks this process alive, then learns who is online through the other live
        processes (Redis only); a dead process's leftover set is dropped."""
        if self._redis is None:
            return
        await self._beat()
        prefix = self._set_key("")
        async for key in self._redis.scan_iter(match=prefix + "*"):
            process = key.decode()[len(prefix) :]
            if process == self.hub.process:
                continue
            if not await self._redis.exists(self._alive_key(process)):
                await self._redis.delete(key)
                continue
            for member in await self._redis.smembers(key):
                self.hub.remote.setdefault(int(member), set()).add(process)

    async def close(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()
        if self._writing is not None:
            self._writing.cancel()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.delete(self._key, self._alive_key(self.hub.process))
                await self._redis.aclose()

    async def settle(self) -> None:
        """Waits for the announcements under way (they run as tasks)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def heartbeat(self) -> None:
        """Keeps this process alive in Redis and forgets the processes that are not.

        Runs every `heartbeat_every` seconds (workers.py). A dead process's users go
        offline everywhere within `process_ttl` + `heartbeat_every` seconds of its last
        beat (+ the coalescing second).
        """
        if not await self._beat():
            # Our key had expired (this process stalled longer than the TTL): the others
            # took our users offline. Say again who is here.
            log.warning("presence heartbeat came late: announcing this process's users again")
            await self._reannounce()
        known = sorted({p for where in self.hub.remote.values() for p in where})
        if not known:
            return
        alive = await self._redis.mget([self._alive_key(p) for p in known])
        for process, beat in zip(known, alive, strict=True):
            if beat is None:
                await self._reap(process)

    async def _beat(self) -> bool:
        """Refreshes this process's keys; False when the liveness key had expired."""
        ttl_ms = max(1, int(self.process_ttl * 1000))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._alive_key(self.hub.process), 1, px=ttl_ms, get=True)
            pipe.pexpire(self._key, 2 * ttl_ms)  # a dead process's set goes in the end
            previous, _ = await pipe.execute()
        return previous is not None

    async def _reannounce(self) -> None:
        users = sorted(self.hub.online)
        if users:
            await self._redis.sadd(self._key, *users)
        for user_id in users:
            await self.broker.publish(PresenceChanged(user_id, True, self.hub.process))
            if not self.hub.remote.get(user_id):
                self._spawn(self._announce(user_id, True, self.clock.monotonic()))

    async def _reap(self, process: str) -> None:
        """A process stopped beating: forget its users here; the first process to take
        the reap key also announces them offline and deletes its set."""
        gone = set(self.hub.drop_process(process))
        lock = f"{self._prefix}presence-reap:{process}"
        ttl_ms = max(1, int(self.process_ttl * 4000))
        if not await self._redis.set(lock, self.hub.process, nx=True, px=ttl_ms):
            return
        key = self._set_key(process)
        gone.update(int(member) for member in await self._redis.smembers(key))
        await self._redis.delete(key)
        log.info("presence: process %s stopped beating; %d users offline", process, len(gone))
        now = self.clock.monotonic()
        for user_id in sorted(gone):
            if not self.hub.is_online(user_id):  # not here, nor through another process
                self._spawn(self._announce(user_id, False, now))

    async def on_local_flip(self, user_id: int, online: bool) -> None:
        """The hook of the hub: this process's view of a user's own connections flipped."""
        try:
            if self._redis is not None:
                if online:
                    await self._redis.sadd(self._key, user_id)
                else:
                    await self._redis.srem(self._key, user_id)
            await self.broker.publish(PresenceChanged(user_id, online, self.hub.process))
        except Exception:  # presence is best-effort: never fails a connect or a disconnect
            log.warning("presence could not be shared", exc_info=True)
        if self.hub.remote.get(user_id):
            return  # present through another process before and after: nothing changed
        self._maybe_announce(user_id)

    def _maybe_announce(self, user_id: int) -> None:
        online = self.hub.is_online(user_id)
        now = self.clock.monotonic()
        last = self._announced.get(user_id)
        if last is None:
            self._spawn(self._announce(user_id, online, now))
            return
        if last.pending is not None:
            return  # a flush is already due: it will send the state as it is then
        if now - last.at >= self.coalesce:
            if online != last.online:
                self._spawn(self._announce(user_id, online, now))
            return
        delay = last.at + self.coalesce - now
        last.pending = self.clock.call_later(delay, self._flush, user_id)

    def _flush(self, user_id: int) -> None:
        last = self._announced.get(user_id)
        if last is None:
            return
        last.pending = None
        online = self.hub.is_online(user_id)
        if online != last.online:
            self._spawn(self._announce(user_id, online, self.clock.monotonic()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce(self, user_id: int, online: bool, at: float) -> None:
        """Stores last_seen_at, then tells the audience. The announcements made while a
        batch is written share the next one: one transaction, one audience query."""
        self._announced[user_id] = _Announced(online, at)
        if len(self._announced) > 100_000:  # forget the oldest: bounded memory
            for key in list(self._announced)[:10_000]:
                self._announced.pop(key, None)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((user_id, online, self.clock(), done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_pending())
        await asyncio.shield(done)

    async def _write_pending(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            try:
                await self._write(batch)
            except Exception:
                log.warning("presence announcement failed", exc_info=True)
            finally:
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _write(self, batch: list[_Pending]) -> None:
        seen = {user_id: now for user_id, _, now, _ in batch}  # a user's last one counts
        async with self.sessions() as session:
            await session.execute(
                update(User), [{"id": uid, "last_seen_at": now} for uid, now in seen.items()]
            )
            await session.commit()
        async with self.reads() as session:
            audiences = await presence_audiences(session, list(seen), max_group=self.max_group)
        for user_id, online, now, _ in batch:  # in order: a flip and its flip back
            audience = audiences.get(user_id)
            if audience:
                frame = presence_frame(user_id, online, now)
                await self.broker.publish(UsersFrame(audience, frame))

    async def query(self, user_id: int, user_ids: Sequence[int]) -> list[str]:
        """`presence` frames for the asked users that share a chat with `user_id`."""
        async with self.reads() as session:
            seen = await shared_users(session, user_id, user_ids[:MAX_QUERY])
        return [presence_frame(uid, self.hub.is_online(uid), last) for uid, last in seen.items()]
