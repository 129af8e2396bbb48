"""Timers on an injected clock: presence coalescing, the quiet sweep, the workers' loops
and the writer's admission timeout run on a fake clock, so these tests move time without
waiting for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley import errors
from parley.server.db.models import Base, Chat, Membership, User
from parley.server.db.session import make_engine, make_sessionmaker
from parley.server.messages.drafts import Draft
from parley.server.messages.writer import Writer
from parley.server.realtime.connection import Connection
from parley.server.realtime.events import UsersFrame
from parley.server.realtime.hub import Hub
from parley.server.realtime.presence import Presence
from parley.server.workers import run_every
from tests.fake_clock import FakeClock, settle

ALICE, BOB = 1, 2


class RecordingBroker:
    """Keeps what is published (and hands presence events back to the hub, as a broker)."""

    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, event: Any) -> None:
        self.published.append(event)

    async def publish_many(self, events: Any) -> None:
        for event in events:
            await self.publish(event)

    async def start(self, handler: Any) -> None: ...
    async def check(self) -> None: ...
    async def close(self) -> None: ...

    def presence_frames(self) -> list[tuple[int, str]]:
        """(recipient, status) of every presence frame pushed to users, in order."""
        out = []
        for event in self.published:
            if isinstance(event, UsersFrame):
                frame = json.loads(event.frame)
                out += [(uid, frame["status"]) for uid in event.user_ids]
        return out


@dataclass
class World:
    clock: FakeClock
    hub: Hub
    broker: RecordingBroker
    presence: Presence
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'presence.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        for uid, name in ((ALICE, "alice"), (BOB, "bob")):
            session.add(
                User(
                    id=uid,
                    username=name,
                    username_key=name,
                    email=f"{name}@example.org",
                    email_key=f"{name}@example.org",
                    password_hash="x",
                    display_name=name,
                )
            )
        session.add(Chat(id=10, type="direct", direct_key="1:2"))
        await session.flush()
        session.add_all(
            [Membership(chat_id=10, user_id=ALICE), Membership(chat_id=10, user_id=BOB)]
        )
        await session.commit()
    clock = FakeClock()
    hub = Hub(presence_timeout=60, monotonic=clock.monotonic, process="here")
    broker = RecordingBroker()
    presence = Presence(hub=hub, broker=broker, sessions=sessions, clock=clock)
    hub.on_presence = presence.on_local_flip
    yield World(clock, hub, broker, presence, sessions)
    await presence.close()
    await engine.dispose()


def socket(user_id: int) -> Connection:
    return Connection(user_id, user_id * 100, 8)


async def test_flips_within_a_second_reach_the_audience_as_one_frame(world: World) -> None:
    a = socket(ALICE)
    await world.hub.register(a)
    await world.presence.settle()
    assert world.broker.presence_frames() == [(BOB, "online")]  # the first flip goes at once

    await world.clock.advance(0.2)
    await world.hub.unregister(a)
    await world.clock.advance(0.2)
    again = socket(ALICE)
    await world.hub.register(again)  # offline and back within the second: held back
    await world.presence.settle()
    assert world.broker.presence_frames() == [(BOB, "online")]
    assert world.clock.pending == 1  # one flush is due, at the end of the second

    await world.clock.advance(0.7)  # the flush: the state then equals the one announced
    await world.presence.settle()
    assert world.broker.presence_frames() == [(BOB, "online")]

    await world.hub.unregister(again)  # over a second since the last announcement
    await world.presence.settle()
    assert world.broker.presence_frames() == [(BOB, "online"), (BOB, "offline")]


async def test_a_flip_held_back_goes_out_when_the_second_ends(world: World) -> None:
    a = socket(ALICE)
    await world.hub.register(a)
    await world.presence.settle()
    await world.clock.advance(0.5)
    await world.hub.unregister(a)  # within the second: not yet
    await world.presence.settle()
    assert world.broker.presence_frames() == [(BOB, "online")]
    await world.clock.advance(0.49)
    await world.presence.settle()
    assert world.broker.presence_frames() == [(BOB, "online")]
    await world.clock.advance(0.01)  # one second after the first announcement
    await world.presence.settle()
    assert world.broker.presence_frames() == [(BOB, "online"), (BOB, "offline")]
    async with world.sessions() as session:
        alice = await session.get(User, ALICE)
        assert alice is not None and alice.last_seen_at == world.clock()  # the clock's time


async def test_the_sweep_loop_takes_a_quiet_user_offline_on_the_clock(world: World) -> None:
    a = socket(ALICE)
    await world.hub.register(a)
    await world.presence.settle()
    sweep = asyncio.create_task(run_every(world.clock, 5, world.hub.sweep_presence, "sweep"))
    try:
        await settle()
        await world.clock.advance(59)  # quiet for 59 s of a 60 s timeout: still online
        await world.presence.settle()
        assert world.hub.is_online(ALICE) and ALICE in world.hub.online
        assert world.broker.presence_frames() == [(BOB, "online")]
        await world.clock.advance(1)  # the sweep at 60 s finds it quiet
        await world.presence.settle()
        assert not world.hub.is_online(ALICE)
        assert world.broker.presence_frames() == [(BOB, "online"), (BOB, "offline")]
        await world.hub.touch(a)  # a frame: present again, within the second: held back
        await world.presence.settle()
        assert world.hub.is_online(ALICE) and len(world.broker.presence_frames()) == 2
        await world.clock.advance(1)
        await world.presence.settle()
        assert world.broker.presence_frames()[-1] == (BOB, "online")
    finally:
        sweep.cancel()


async def test_the_writer_admission_timeout_runs_on_the_clock(world: World) -> None:
    """A send that finds the writer's queue full is refused (Overloaded) once the clock has
    moved `admit_timeout` (1 s) on, not before, and without real waiting."""
    writer = Writer(world.sessions, world.broker, world.clock, max_pending=1)
    async with world.sessions() as holder:  # holds SQLite's write lock: the writer stalls
        await holder.execute(update(User).where(User.id == BOB).values(bio="busy"))
        try:
            stalled = await writer.submit(Draft(ALICE, 10, "taken, then stuck on the lock"))
            await settle()
            queued = await writer.submit(Draft(ALICE, 10, "fills the queue"))
            refused = asyncio.create_task(writer.submit(Draft(ALICE, 10, "no room")))
            await settle()  # it waits for room from now on
            await world.clock.advance(0.9)
            assert not refused.done()
            await world.clock.advance(0.1)
            assert refused.done()  # at once: no real second passed
            with pytest.raises(errors.Overloaded):
                await refused
        finally:
            await holder.rollback()
    try:
        async with asyncio.timeout(30):  # the lock is free: both earlier sends are stored
            assert (await stalled)[1] and (await queued)[1]
    finally:
        await writer.close()
