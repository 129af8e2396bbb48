"""Contract tests: each backend interface behaves the same in memory and on real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from parley import errors
from parley.server.realtime import events
from parley.server.realtime.broker import (
    RECONNECT_PAUSE,
    Broker,
    Event,
    InProcessBroker,
    RedisBroker,
)
from parley.server.throttle import Throttle
from tests.conftest import REDIS_URL, need
from tests.fake_clock import FakeClock
from tests.waiting import assert_nothing_within, eventually


async def redis_problem() -> str | None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        return str(exc)
    finally:
        await client.aclose()
    return None


@pytest.fixture(params=["memory", "redis"])
async def redis_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    if request.param == "memory":
        yield None
        return
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    yield REDIS_URL


def prefix() -> str:
    return f"parley-test-{uuid.uuid4().hex[:8]}:"


async def make_broker(url: str | None) -> Broker:
    return RedisBroker(url, channel=prefix() + "events") if url else InProcessBroker()


async def started(broker: Broker) -> list[Event]:
    """Starts the broker with a handler that keeps what it receives, in order."""
    received: list[Event] = []

    async def handler(event: Event) -> None:
        received.append(event)

    await broker.start(handler)
    await broker.check()
    return received


async def test_broker_delivers_each_event_once_in_order(redis_url: str | None) -> None:
    broker = await make_broker(redis_url)
    received = await started(broker)
    for n in range(20):
        await broker.publish({"t": "chat", "chat_id": 7, "n": n, "frame": f"frame {n}"})
    await eventually(lambda: len(received) >= 20, what="20 events")
    await assert_nothing_within(0.1, lambda: len(received) > 20, what="a 21st event")
    assert [e["n"] for e in received] == list(range(20))
    assert received[3] == {"t": "chat", "chat_id": 7, "n": 3, "frame": "frame 3"}
    await broker.close()


async def test_a_batch_published_at_once_arrives_whole_and_in_order(
    redis_url: str | None,
) -> None:
    """The writer publishes a stored batch with publish_many (one Redis round trip):
    every event once, in the batch's order, after events published before it."""
    broker = await make_broker(redis_url)
    received = await started(broker)
    raw: list[bytes] = []
    if isinstance(broker, RedisBroker):  # what travels: one Redis message per batch
        spy = aioredis.Redis.from_url(str(redis_url)).pubsub(ignore_subscribe_messages=True)
        await spy.subscribe(broker._channel)
    await broker.publish({"t": "chat", "chat_id": 7, "n": -1, "frame": "before"})
    await broker.publish_many(
        [{"t": "chat", "chat_id": 7, "n": n, "frame": f"frame {n}"} for n in range(50)]
    )
    await broker.publish_many([{"t": "chat", "chat_id": 8, "n": 50, "frame": "alone"}])
    await eventually(lambda: len(received) >= 52, what="52 events")
    await assert_nothing_within(0.1, lambda: len(received) > 52, what="a 53rd event")
    assert [e["n"] for e in received] == list(range(-1, 51))
    assert received[10] == {"t": "chat", "chat_id": 7, "n": 9, "frame": "frame 9"}
    if isinstance(broker, RedisBroker):
        async with asyncio.timeout(5):
            while len(raw) < 3:
                message = await spy.get_message(timeout=0.1)
                if message is not None:
                    raw.append(message["data"])
        assert await spy.get_message(timeout=0.3) is None
        assert len(raw) == 3  # the one event, the batch of 50, the batch of one
        await spy.aclose()
    await broker.close()


async def test_redis_broker_reaches_every_process() -> None:
    """Two brokers on one channel stand for two server processes."""
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    channel = prefix() + "events"
    first, second = RedisBroker(REDIS_URL, channel=channel), RedisBroker(REDIS_URL, channel=channel)
    got: dict[str, list[Event]] = {"first": [], "second": []}

    async def on_first(event: Event) -> None:
        got["first"].append(event)

    async def on_second(event: Event) -> None:
        got["second"].append(event)

    await first.start(on_first)
    await second.start(on_second)
    admin = aioredis.Redis.from_url(REDIS_URL)

    async def both_subscribed() -> bool:
        return dict(await admin.pubsub_numsub(channel)).get(channel.encode()) == 2

    await eventually(both_subscribed, what="both brokers subscribed")
    await admin.aclose()
    await first.publish({"t": "users", "user_ids": [1], "frame": "x"})
    await eventually(lambda: got["first"] and got["second"], what="the event in both")
    assert got["first"] == got["second"] == [{"t": "users", "user_ids": [1], "frame": "x"}]
    await first.close()
    await second.close()


async def test_the_redis_broker_goes_on_after_redis_closes_its_connections() -> None:
    """A Redis blip (its connections killed): the subscriber pauses on the clock, hands
    a Resync to the handler (events may have been missed), subscribes again and goes on
    receiving; a publish fails at most once."""
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    name, clock = prefix().rstrip(":"), FakeClock()
    url = REDIS_URL + ("&" if "?" in REDIS_URL else "?") + f"client_name={name}"
    broker = RedisBroker(url, channel=name + ":events", clock=clock)
    received = await started(broker)
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        await broker.publish({"t": "users", "user_ids": [1], "frame": "before"})
        await until(lambda: len(received) == 1)
        for client in await admin.client_list():
            if client["name"] == name:  # only this broker's: the subscriber and the lane
                await admin.client_kill_filter(_id=client["id"])
        await until(lambda: clock.pending == 1)  # the pause after a failed receive
        await clock.advance(RECONNECT_PAUSE)
        await until(lambda: len(received) == 2)
        assert isinstance(received[1], events.Resync)
        failures = 0

        async def subscribed_again() -> bool:
            nonlocal failures
            if len(received) > 2:
                return True
            try:
                await broker.publish({"t": "users", "user_ids": [1], "frame": "after"})
            except redis.exceptions.ConnectionError:
                failures += 1
            return False

        await eventually(subscribed_again, interval=0.02, what="the broker subscribed again")
        assert failures <= 1
        assert received[2] == {"t": "users", "user_ids": [1], "frame": "after"}
    finally:
        await admin.aclose()
        await broker.close()


async def until(condition: Callable[[], bool]) -> None:
    await eventually(condition)


async def test_throttle_counts_per_key_and_says_when_to_retry(redis_url: str | None) -> None:
    throttle = Throttle({"send": "3/second"}, redis_url=redis_url, prefix=prefix())
    for _ in range(3):
        await throttle.hit("send", 1)
    with pytest.raises(errors.RateLimited) as limited:
        await throttle.hit("send", 1)
    assert limited.value.code == "rate_limited" and 1 <= limited.value.retry_after <= 2
    await throttle.hit("send", 2)  # another user is not affected
    assert await throttle.allow("send", 1) is False
    await throttle.reset()
    await throttle.hit("send", 1)


async def test_throttle_check_does_not_count(redis_url: str | None) -> None:
    throttle = Throttle({"login": "2/minute"}, redis_url=redis_url, prefix=prefix())
    for _ in range(5):
        await throttle.check("login", "alice")
    assert await throttle.allow("login", "alice") and await throttle.allow("login", "alice")
    with pytest.raises(errors.RateLimited):
        await throttle.check("login", "alice")
    await throttle.reset()
