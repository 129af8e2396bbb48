"""The retry schedule of bot events on the injected clock: a failing event URL is tried
at once, then about 1 s, 10 s and 60 s later, then the delivery is dropped and logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from parley.server.accounts.schemas import UserPublic
from parley.server.db.models import Bot, BotDelivery, User
from parley.server.db.session import make_engine, make_sessionmaker, migrate
from parley.server.integrations.events import BotEvents, CommandCall, Target
from parley.server.outbound import Outbound
from parley.server.realtime.broker import make_broker
from tests.fake_clock import FakeClock
from tests.integration.receiver import Receiver, answer
from tests.waiting import assert_nothing_within, eventually


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = await Receiver(default=answer(500)).start()
    yield made
    await made.close()


async def _count(receiver: Receiver, expected: int) -> None:
    """Waits (real time: the requests are real) until `expected` requests arrived, then a
    little more to see that no other follows."""
    await eventually(lambda: len(receiver.received) >= expected, what=f"{expected} requests")
    await assert_nothing_within(
        0.2, lambda: len(receiver.received) > expected, what="no further request"
    )
    assert len(receiver.received) == expected


async def test_failures_are_retried_after_1_10_and_60_seconds_then_dropped(
    tmp_path: Path, receiver: Receiver
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    await migrate(engine)
    sessions = make_sessionmaker(engine)
    clock = FakeClock()
    async with sessions() as session:
        bot = User(username="rbot", username_key="rbot", email="r@bots.invalid",
                   email_key="r@bots.invalid", password_hash="!", display_name="R", bio="",
                   is_admin=False, is_bot=True)  # fmt: skip
        session.add(bot)
        await session.flush()
        session.add(Bot(user_id=bot.id, owner_id=bot.id, event_url=receiver.url,
                        commands="[]", signing_secret="s"))  # fmt: skip
        await session.commit()
        bot_id = bot.id

    async def no_reply(*_args: object) -> None:
        raise AssertionError("a failed delivery posts nothing")

    outbound = Outbound(["127.0.0.0/8"], clock=clock)
    events = BotEvents(sessions, outbound, make_broker(None, prefix="t"), clock, no_reply)
    events.start()
    try:
        caller = UserPublic(id=bot_id, username="x", display_name="x", bio="", avatar_url=None,
                            is_admin=False, online=False, last_seen_at=None,
                            created_at=clock())  # fmt: skip
        events.command(CommandCall(1, "/go", "", caller, Target(bot_id, receiver.url, "s")))
        await _count(receiver, 1)
        for wait, total in ((1.0, 2), (10.0, 3), (60.0, 4)):
            await clock.advance(wait - 0.5)
            await _count(receiver, total - 1)  # not yet
            await clock.advance(0.6)
            await _count(receiver, total)
        await clock.advance(3600)
        await _count(receiver, 4)  # dropped: never tried again

        async def finished() -> BotDelivery | None:
            async with sessions() as session:
                row = (await session.execute(select(BotDelivery))).scalar_one()
            return row if row.status != "pending" else None

        row = await eventually(finished, what="the delivery's outcome")
        assert (row.status, row.attempts, row.response_status) == ("dropped", 4, 500)
        assert row.error == "HTTP 500" and row.kind == "command"
    finally:
        await events.close()
        await outbound.aclose()
        await engine.dispose()
