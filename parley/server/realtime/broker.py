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
from parley.server.realtime import events

log = logging.getLogger("parley.broker")

# What travels: a typed event (realtime/events.py) or its wire form, a JSON-able dict.
Event = events.Event | dict[str, Any]
Handler = Callable[[Any], Awaitable[None]]
RECONNECT_PAUSE = 0.5  # seconds between a failed receive and the next try


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
    returns."""

    def __init__(self, url: str, *, channel: str, clock: Clock | None = None) -> None:
        self._redis = redisclient.connect(url)
        self._lane = redisclient.Lane(self._redis)
        self._channel = channel
        self._clock = clock or Clock()
        self._task: asyncio.Task[None] | None = None

    async def start(self, handler: Handler) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._channel)
        self._task = asyncio.create_task(self._run(pubsub, handler), name="redis-broker")

    async def _run(self, pubsub: Any, handler: Handler) -> None:
        while True:
            try:
                # No read timeout: a timed read costs about 4 µs more per message (a timer
                # per read), and close() cancels this task anyway.
                message = await pubsub.get_message(timeout=None)
                if message is not None:
                    data = orjson.loads(message["data"])
                    if isinstance(data, list):  # a writer's batch, in order
                        for event in data:
                            await handler(event)
                    else:
                        await handler(data)
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception:  # a bad event or a Redis blip must not stop delivery
                log.exception("broker receive failed; retrying")
                await self._clock.sleep(RECONNECT_PAUSE)
                # Events may have been missed meanwhile: caches built on them start afresh.
                with contextlib.suppress(Exception):
                    await handler(events.Resync())

    async def publish(self, event: Event) -> None:
        await self._lane.call("PUBLISH", self._channel, orjson.dumps(events.to_wire(event)))

    async def publish_many(self, batch: Sequence[Event]) -> None:
        """The events in order as one Redis message (a JSON array): a writer's batch costs
        one round trip here, and one message to read and parse in every other process,
        not one per event (redis-py spends about 0.1 ms of CPU on each message read)."""
        if len(batch) == 1:
            return await self.publish(batch[0])
        wire = [events.to_wire(event) for event in batch]
        await self._lane.call("PUBLISH", self._channel, orjson.dumps(wire))

    async def check(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._lane.close()
        await self._redis.aclose()


def make_broker(redis_url: str | None, *, prefix: str, clock: Clock | None = None) -> Broker:
    if redis_url:
        return RedisBroker(redis_url, channel=prefix + "events", clock=clock)
    return InProcessBroker()
