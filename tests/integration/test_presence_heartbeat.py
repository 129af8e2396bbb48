"""The presence heartbeat on real Redis, heartbeats called by hand: a process that stops
beating is reaped by another (its users offline), and comes back by itself when it beats
again (its users online again). Nothing here runs a server: two hubs share one broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.server.db.models import Base, Chat, Membership, User
from parley.server.db.session import make_engine, make_sessionmaker
from parley.server.realtime.connection import Connection
from parley.server.realtime.hub import Hub
from parley.server.realtime.presence import Presence
from tests.conftest import REDIS_URL, need
from tests.fake_clock import FakeClock
from tests.integration.test_backends import redis_problem
from tests.unit.test_presence_clock import ALICE, BOB, RecordingBroker
from tests.waiting import eventually

TTL = 0.5


class SharedBroker(RecordingBroker):
    """One channel for two hubs, as Redis pub/sub would be."""

    def __init__(self) -> None:
        super().__init__()
        self.hubs: list[Hub] = []

    async def publish(self, event: Any) -> None:
        await super().publish(event)
        for hub in self.hubs:
            await hub.handle(event)


@dataclass
class Two:
    p: Presence
    r: Presence
    broker: SharedBroker
    redis: Redis
    prefix: str


async def _database(tmp_path: Path) -> AsyncEngine:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'presence.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with make_sessionmaker(engine)() as session:
        for uid, name in ((ALICE, "alice"), (BOB, "bob")):
            email = f"{name}@example.org"
            session.add(
                User(id=uid, username=name, username_key=name, email=email, email_key=email,
                     password_hash="x", display_name=name)
            )  # fmt: skip
        session.add(Chat(id=10, type="direct", direct_key="1:2"))
        await session.flush()
        session.add_all([Membership(chat_id=10, user_id=u) for u in (ALICE, BOB)])
        await session.commit()
    return engine


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[Two]:
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    engine = await _database(tmp_path)
    sessions = make_sessionmaker(engine)
    prefix = f"parley-test-{uuid.uuid4().hex[:8]}:"
    broker, clock = SharedBroker(), FakeClock()
    made = []
    for name in ("p", "r"):
        hub = Hub(monotonic=clock.monotonic, process=name)
        presence = Presence(
            hub=hub, broker=broker, sessions=sessions, clock=clock,
            redis=Redis.from_url(REDIS_URL), prefix=prefix, process_ttl=TTL,
        )  # fmt: skip
        hub.on_presence = presence.on_local_flip
        broker.hubs.append(hub)
        await presence.start()
        made.append(presence)
    redis = Redis.from_url(REDIS_URL)
    yield Two(made[0], made[1], broker, redis, prefix)
    for presence in made:
        await presence.close()
    keys = [key async for key in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    await engine.dispose()


async def _expired(two: Two) -> None:
    """Waits until both processes' alive keys expired in Redis (neither was renewed)."""
    keys = [f"{two.prefix}presence-alive:{process}" for process in ("p", "r")]

    async def gone() -> bool:
        return not await two.redis.exists(*keys)

    await eventually(gone, what=f"{keys} to expire")


async def test_a_stalled_process_is_reaped_then_comes_back(two: Two) -> None:
    p, r = two.p, two.r
    await p.hub.register(Connection(ALICE, 100, 8))
    await p.settle()
    assert r.hub.is_online(ALICE) and two.broker.presence_frames() == [(BOB, "online")]
    await p.heartbeat()
    await r.heartbeat()  # p is alive: nothing changes
    await r.settle()
    assert r.hub.is_online(ALICE) and two.broker.presence_frames() == [(BOB, "online")]

    await _expired(two)  # p does not beat: its key expires in Redis (and r's)
    await r.heartbeat()
    await r.settle()
    assert not r.hub.is_online(ALICE)  # r forgot p's users
    assert two.broker.presence_frames() == [(BOB, "online"), (BOB, "offline")]
    assert not await two.redis.exists(f"{two.prefix}presence:p")  # its set went too
    await r.heartbeat()  # reaped once: no second announcement
    await r.settle()
    assert len(two.broker.presence_frames()) == 2

    await p.heartbeat()  # p beats again: it finds its key gone and says who is here
    await p.settle()
    assert r.hub.is_online(ALICE)
    assert two.broker.presence_frames()[-1] == (BOB, "online")
    members = await two.redis.smembers(f"{two.prefix}presence:p")
    assert {int(m) for m in members} == {ALICE}
    await r.heartbeat()
    await r.settle()
    assert r.hub.is_online(ALICE) and two.broker.presence_frames()[-1] == (BOB, "online")


async def test_a_process_starting_later_ignores_a_dead_process_set(two: Two) -> None:
    await two.p.hub.register(Connection(ALICE, 100, 8))
    await two.r.hub.register(Connection(BOB, 200, 8))
    await two.p.settle()
    await two.r.settle()
    await _expired(two)  # p stops beating (as if killed); r's key is renewed
    await two.redis.set(f"{two.prefix}presence-alive:r", 1, px=10_000)
    late = Presence(
        hub=Hub(process="late"), broker=two.broker, sessions=two.p.sessions,
        clock=two.p.clock, redis=Redis.from_url(REDIS_URL), prefix=two.prefix, process_ttl=TTL,
    )  # fmt: skip
    await late.start()
    try:
        assert not late.hub.is_online(ALICE) and late.hub.is_online(BOB)
        assert not await two.redis.exists(f"{two.prefix}presence:p")
    finally:
        await late.close()
