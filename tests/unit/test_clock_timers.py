"""Timers outside presence on the injected clock: the Redis broker's pause after losing its
subscription, and the WebSocket close grace. A FakeClock moves; nothing waits for real time
except real I/O, bounded."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from redis.asyncio import Redis

from parley.server.realtime import events
from parley.server.realtime.broker import RECONNECT_PAUSE, RedisBroker
from parley.server.realtime.ws import CLOSE_GRACE, SocketConnection
from tests.conftest import REDIS_URL, kill_client, need_redis
from tests.fake_clock import FakeClock, settle
from tests.waiting import assert_nothing_within, eventually


async def _until(condition: Any) -> None:
    await eventually(condition)


async def test_the_broker_pauses_on_the_clock_after_losing_its_subscription() -> None:
    await need_redis()
    clock = FakeClock()
    process = uuid.uuid4().hex[:12]
    broker = RedisBroker(
        REDIS_URL,
        channel=f"parley-test-{uuid.uuid4().hex[:8]}:events",
        clock=clock,
        process=process,
    )
    got: list[Any] = []

    async def handler(event: Any) -> None:
        got.append(event)

    await broker.start(handler)
    admin = Redis.from_url(REDIS_URL)
    try:
        await kill_client(admin, f"parley-events-{process}")
        await _until(lambda: broker.resubscribed == 0 and clock.pending == 1)  # pausing
        # still paused: the clock has not moved
        await assert_nothing_within(0.2, lambda: broker.resubscribed or got, what="resubscribing")
        await clock.advance(RECONNECT_PAUSE - 0.01)
        assert broker.resubscribed == 0
        await clock.advance(0.01)
        await _until(lambda: len(got) == 1)
        assert isinstance(got[0], events.Resync)  # what missed events built starts afresh
        await broker.publish({"t": "users", "user_ids": [1], "frame": "next"})
        await _until(lambda: len(got) == 2)
        assert got[1] == {"t": "users", "user_ids": [1], "frame": "next"}
    finally:
        await admin.aclose()
        await broker.close()


async def test_a_failing_event_resyncs_and_delivery_goes_on() -> None:
    await need_redis()
    broker = RedisBroker(REDIS_URL, channel=f"parley-test-{uuid.uuid4().hex[:8]}:events")
    got: list[Any] = []

    async def handler(event: Any) -> None:
        got.append(event)
        if event == {"t": "users", "user_ids": [1], "frame": "bad"}:
            raise RuntimeError("a handler failure")

    await broker.start(handler)
    try:
        await broker.publish({"t": "users", "user_ids": [1], "frame": "bad"})
        await broker.publish({"t": "users", "user_ids": [1], "frame": "next"})
        await _until(lambda: len(got) == 3)
        assert isinstance(got[1], events.Resync)  # what the failed event changed is redone
        assert got[2] == {"t": "users", "user_ids": [1], "frame": "next"}
        assert broker.resubscribed == 0  # the subscription itself was fine
    finally:
        await broker.close()


class StuckSocket:
    """A socket whose peer stopped reading: every send and the close wait for ever."""

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []
        self.aborted = False

    async def send_text(self, _text: str) -> None:
        await asyncio.Event().wait()

    async def close(self, code: int, reason: str = "") -> None:
        self.closes.append((code, reason))
        await asyncio.Event().wait()


async def test_a_stuck_writer_is_forced_closed_when_the_clock_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import parley.server.realtime.ws as ws_module

    clock = FakeClock()
    ws = StuckSocket()
    monkeypatch.setattr(ws_module, "abort_transport", lambda sock: setattr(sock, "aborted", True))
    principal = SimpleNamespace(id=1, session_id=1)
    conn = SocketConnection(ws, None, principal, 4, set(), frozenset(), clock)  # type: ignore[arg-type]
    conn.push('{"t":"x"}')  # no direct writes: queued, and the writer task starts
    writer = conn.writer
    assert writer is not None
    await settle()
    conn.close(1008, "bye")  # the writer is stuck in its send: the grace timer starts
    await settle()
    await clock.advance(CLOSE_GRACE - 0.1)
    assert not writer.done() and ws.closes == []
    await clock.advance(0.1)  # the grace is over: the writer is cancelled, a close sent
    assert writer.cancelled() and ws.closes == [(1008, "bye")]
    assert not ws.aborted
    await clock.advance(CLOSE_GRACE)  # the close frame cannot go out either: dropped
    assert ws.aborted
