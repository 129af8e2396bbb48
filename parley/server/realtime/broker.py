"""Pub/sub between server processes: in-process for one process, Redis for many.

An event is a small JSON-able dict. A chat event is published once per chat, never once
per member: each process's hub fans it out to the connections it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson

from parley import redisclient
from parley.clock import Clock
from parley.server.jobs import cancel
from parley.server.realtime import events

log = logging.getLogger("parley.broker")

# What travels: a typed event (realtime/events.py) or its wire form, a JSON-able dict.
Event = events.Event | dict[str, Any]
Handler = Callable[[Any], Awaitable[None]]
RECONNECT_PAUSE = 0.5  # seconds between a lost subscription and the next try
KEEPALIVE = 5.0  # seconds between PINGs on the subscription; unanswered by the next: dead


class Broker(Protocol):
    async def publish(self, event: Event) -> None: ...
    async def publish_many(self, events: Sequence[Event]) -> None: ...
    async def start(self, handler: Handler) -> None: ...
    async def check(self) -> None: ...
    async def close(self) -> None: ...


class InProcessBroker:
    """Delivers events to this process's hub only: the embedded default."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    async def publish(self, event: Event) -> None:
        if self._handler is not None:  # in one process the typed event itself travels
            await self._handler(event)

    async def publish_many(self, events: Sequence[Event]) -> None:
        for event in events:
            await self.publish(event)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        self._handler = None


class RedisBroker:
    """Redis pub/sub on one channel; every process receives every event once. Publishes
    go on a `Lane` (one held connection, concurrent ones pipelined), each done when it
    returns.

    The subscription is one connection named `parley-events-<process>` (`CLIENT LIST`),
    without redis-py's silent reconnects: when it drops, or a PING sent on it is not
    answered within `keepalive` seconds (a silently dead link), it is replaced, and the hub
    gets a `Resync` once Redis confirmed the new subscription, since events published in
    between were lost. A publish Redis refuses twice reaches this process's own hub
    instead, and a `Resync` goes to every process as soon as Redis takes publishes again.
    """

    def __init__(
        self,
        url: str,
        *,
        channel: str,
        clock: Clock | None = None,
        process: str = "local",
        keepalive: float = KEEPALIVE,
    ) -> None:
        self._redis = redisclient.connect(url)
        self._subscriber = redisclient.connect_subscriber(url, name=f"parley-events-{process}")
        self._lane = redisclient.Lane(self._redis)
        self._channel = channel
        self._clock = clock or Clock()
        self.keepalive = keepalive
        self._task: asyncio.Task[None] | None = None
        self._handler: Handler | None = None
        self._answered = 0.0  # when the last PONG came (the clock's monotonic time)
        self.resync_due = False  # a publish was lost: every process must Resync
        self.resubscribed = 0
        self.subscribed = False  # listening now (False during the pause after a loss)

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        pubsub = await self._subscribe()
        self.subscribed = True
        self._task = asyncio.create_task(self._run(pubsub, handler), name="redis-broker")

    async def _subscribe(self) -> Any:
        """A new subscription, confirmed by Redis: every event published from now on comes."""
        pubsub = self._subscriber.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            async with self._clock.timeout(self.keepalive):
                while (await pubsub.get_message(timeout=None) or {}).get("type") != "subscribe":
                    pass
        except BaseException:
            await _drop(pubsub)
            raise
        return pubsub

    async def _run(self, pubsub: Any, handler: Handler) -> None:
        while True:
            try:
                await self._listen(pubsub, handler)
            except asyncio.CancelledError:
                await _drop(pubsub)
                raise
            except Exception as exc:
                log.warning("broker subscription lost (%s); subscribing again", exc)
            self.subscribed = False
            await _drop(pubsub)
            pubsub = await self._resubscribe()
            self.subscribed = True
            # Events published while nothing listened are lost: what was built on them
            # (caches, the sockets' subscriptions) is checked afresh.
            with contextlib.suppress(Exception):
                await handler(events.Resync())

    async def _resubscribe(self) -> Any:
        while True:
            await self._clock.sleep(RECONNECT_PAUSE)
            try:
                pubsub = await self._subscribe()
            except Exception as exc:
                log.warning("broker cannot subscribe (%s); trying again", exc)
                continue
            self.resubscribed += 1
            return pubsub

    async def _listen(self, pubsub: Any, handler: Handler) -> None:
        """Receives events until the connection fails or goes silent: a PING every
        `keepalive` seconds must be answered before the next one goes."""
        reader = asyncio.create_task(self._receive(pubsub, handler), name="redis-broker-read")
        try:
            while True:
                asked = self._clock.monotonic()
                with contextlib.suppress(TimeoutError):
                    async with self._clock.timeout(self.keepalive):
                        await pubsub.ping()
                        await asyncio.shield(reader)  # returns only when the reader failed
                if reader.done():
                    reader.result()
                if self._answered < asked:
                    raise ConnectionError(f"no answer to a PING within {self.keepalive} s")
                with contextlib.suppress(Exception):
                    await self._announce_resync()
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _receive(self, pubsub: Any, handler: Handler) -> None:
        # No read timeout: a timed read costs about 4 µs more per message (a timer per
        # read); the keepalive notices a connection that stopped answering instead.
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                try:
                    await _deliver(orjson.loads(message["data"]), handler)
                except Exception:  # a bad event must not stop delivery; what it changed is redone
                    log.exception("broker event failed; resyncing")
                    with contextlib.suppress(Exception):
                        await handler(events.Resync())
            elif kind == "pong":
                self._answered = self._clock.monotonic()

    async def publish(self, event: Event) -> None:
        await self._publish(orjson.dumps(events.to_wire(event)), (event,))

    async def publish_many(self, batch: Sequence[Event]) -> None:
        """The events in order as one Redis message (a JSON array): a writer's batch costs
        one round trip here, and one message to read and parse in every other process,
        not one per event (redis-py spends about 0.1 ms of CPU on each message read)."""
        if len(batch) == 1:
            return await self.publish(batch[0])
        wire = [events.to_wire(event) for event in batch]
        await self._publish(orjson.dumps(wire), batch)

    async def _publish(self, data: bytes, batch: Sequence[Event]) -> None:
        """Publishes, once more if Redis fails (the lane reconnects). It never raises: what
        it announces is committed. When Redis refuses twice, this process's hub gets the
        events (its caches and sockets stay exact, the sender gets its copy), and every
        process a `Resync` before the next publish that goes (or the next keepalive)."""
        if self.resync_due:
            with contextlib.suppress(Exception):
                await self._announce_resync()
        for attempt in range(2):
            try:
                await self._lane.call("PUBLISH", self._channel, data)
                return
            except Exception as exc:
                error = exc
                if attempt:
                    log.warning("publish failed twice (%s): delivered here only", error)
        self.resync_due = True
        if self._handler is not None:
            for event in batch:
                await self._handler(event)

    async def _announce_resync(self) -> None:
        if not self.resync_due:
            return
        self.resync_due = False  # before the await: concurrent publishes announce it once
        try:
            await self._lane.call(
                "PUBLISH", self._channel, orjson.dumps(events.to_wire(events.Resync()))
            )
        except BaseException:
            self.resync_due = True
            raise

    async def check(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await cancel(self._task)
        await self._lane.close()
        await self._redis.aclose()
        await self._subscriber.aclose()


async def _deliver(data: Any, handler: Handler) -> None:
    if isinstance(data, list):  # a writer's batch, in order
        for event in data:
            await handler(event)
    else:
        await handler(data)


async def _drop(pubsub: Any) -> None:
    """Closes a subscription without waiting on its peer (it may be the dead one)."""
    conn = pubsub.connection
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.disconnect(nowait=True)
    with contextlib.suppress(Exception):
        await pubsub.aclose()


def make_broker(
    redis_url: str | None,
    *,
    prefix: str,
    clock: Clock | None = None,
    process: str = "local",
    keepalive: float = KEEPALIVE,
) -> Broker:
    if redis_url:
        return RedisBroker(
            redis_url,
            channel=prefix + "events",
            clock=clock,
            process=process,
            keepalive=keepalive,
        )
    return InProcessBroker()
