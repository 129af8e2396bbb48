"""Contract tests: each backend interface behaves the same in memory and on real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
import redis.asyncio as aioredis

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
    """A Redis blip (its connections killed): the subscriber pauses on the clock, subscribes
    again, hands a Resync to the handler (events may have been missed) and goes on
    receiving; a publish never fails (the lane reconnects)."""
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    name, clock = prefix().rstrip(":"), FakeClock()
    url = REDIS_URL + ("&" if "?" in REDIS_URL else "?") + f"client_name={name}"
    broker = RedisBroker(url, channel=name + ":events", clock=clock, process=name)
    received = await started(broker)
    admin = aioredis.Redis.from_url(REDIS_URL)
    try:
        await broker.publish({"t": "users", "user_ids": [1], "frame": "before"})
        await until(lambda: len(received) == 1)
        for client in await admin.client_list():
            # only this broker's: the lane (named by the URL) and the subscriber (its own)
            if client["name"] in {name, f"parley-events-{name}"}:
                await admin.client_kill_filter(_id=client["id"])
        await until(lambda: not broker.subscribed)  # the pause after a lost subscription
        await clock.advance(RECONNECT_PAUSE)
        await until(lambda: len(received) == 2)
        assert isinstance(received[1], events.Resync)
        assert broker.subscribed and broker.resubscribed == 1
        await broker.publish({"t": "users", "user_ids": [1], "frame": "after"})
        await until(lambda: len(received) == 3)
        assert received[2] == {"t": "users", "user_ids": [1], "frame": "after"}
        assert not broker.resync_due  # nothing was lost by a publish
    finally:
        await admin.aclose()
        await broker.close()


class SilentProxy:
    """A TCP relay to Redis whose links can go silent: bytes stop flowing both ways and
    nothing is closed, as on a dead network path (not a restart, which Redis announces)."""

    def __init__(self, url: str) -> None:
        self._url = urlsplit(url)
        self._server: asyncio.Server | None = None
        self._links: list[dict[str, bool]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """The URL to reach Redis through the relay."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return urlunsplit(self._url._replace(netloc=f"127.0.0.1:{port}"))

    def silence(self) -> None:
        """Every link open now goes silent (links opened later relay)."""
        for link in self._links:
            link["silent"] = True

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            self._url.hostname, self._url.port or 6379
        )
        link = {"silent": False}
        self._links.append(link)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: dict[str, bool]
    ) -> None:
        try:
            while data := await source.read(65536):
                if not link["silent"]:  # silent: swallowed, the peer never hears
                    sink.write(data)
                    await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_the_keepalive_notices_a_silent_subscription_within_two_intervals() -> None:
    """The subscription's link goes silent (nothing closes it): the PING that gets no
    answer tells within two keepalive intervals (10 s at the default of 5), and the broker
    subscribes again and hands a Resync to the hub, then receives again."""
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    proxy, channel, keepalive = SilentProxy(REDIS_URL), prefix() + "events", 0.4
    broker = RedisBroker(await proxy.start(), channel=channel, keepalive=keepalive)
    received = await started(broker)
    publisher = aioredis.Redis.from_url(REDIS_URL)
    try:
        proxy.silence()
        silenced = time.monotonic()
        await until(lambda: not broker.subscribed)
        noticed = time.monotonic() - silenced
        assert noticed <= 2 * keepalive + 0.3, noticed
        await until(lambda: broker.resubscribed == 1 and len(received) == 1)
        assert isinstance(received[0], events.Resync)
        event = {"t": "users", "user_ids": [1], "frame": "after"}
        await publisher.publish(channel, orjson.dumps(event))
        await until(lambda: len(received) == 2)
        assert received[1] == event
    finally:
        await publisher.aclose()
        await broker.close()
        await proxy.close()


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
