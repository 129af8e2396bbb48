"""Persist, then publish, structurally: what a transaction queues runs once it commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.server.db.models import User
from parley.server.db.session import make_engine, make_sessionmaker, migrate
from parley.server.db.unit import after_commit, publish_on_commit
from parley.server.realtime.broker import InProcessBroker
from parley.server.realtime.events import Event, ProfileChanged


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'unit.db'}")
    await migrate(eng)
    yield eng
    await eng.dispose()


async def _heard(broker: InProcessBroker) -> list[Event]:
    heard: list[Event] = []

    async def handler(event: Event) -> None:
        heard.append(event)

    await broker.start(handler)
    return heard


def _user(name: str) -> User:
    return User(
        username=name,
        username_key=name,
        email=f"{name}@example.invalid",
        email_key=f"{name}@example.invalid",
        password_hash="x",
        display_name=name,
        bio="",
        is_admin=False,
    )


async def test_events_are_published_after_the_commit_and_see_its_data(engine: AsyncEngine) -> None:
    broker = InProcessBroker()
    heard = await _heard(broker)
    sessions = make_sessionmaker(engine)
    seen_in_db: list[int] = []
    async with sessions() as session:
        session.add(_user("ann"))
        await session.flush()
        publish_on_commit(session, broker, ProfileChanged(1), ProfileChanged(2))

        async def count_users() -> None:  # another connection: only committed rows
            async with sessions() as other:
                seen_in_db.append(await other.scalar(select(func.count(User.id))) or 0)

        after_commit(session, count_users)
        assert heard == []  # nothing before the commit
        await session.commit()
    assert heard == [ProfileChanged(1), ProfileChanged(2)]  # in order
    assert seen_in_db == [1]


async def test_a_rollback_or_a_failed_commit_publishes_nothing(engine: AsyncEngine) -> None:
    broker = InProcessBroker()
    heard = await _heard(broker)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        publish_on_commit(session, broker, ProfileChanged(1))
        await session.rollback()
        await session.commit()  # a later commit does not run what the rollback dropped
    async with sessions() as session:
        publish_on_commit(session, broker, ProfileChanged(2))
    # closed without a commit: dropped
    async with sessions() as session:
        session.add(_user("bob"))
        await session.commit()
    async with sessions() as session:
        session.add(_user("bob"))  # the same unique name: the commit fails
        publish_on_commit(session, broker, ProfileChanged(3))
        with pytest.raises(IntegrityError):
            await session.commit()
    assert heard == []
