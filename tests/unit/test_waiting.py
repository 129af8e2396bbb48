"""The waiting helpers of the tests (tests/waiting.py) do what they say, and say what they
waited for when they fail."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from parley.server.realtime import events
from parley.server.realtime.hub import Hub
from tests.waiting import (
    assert_nothing_within,
    capture_events,
    eventually,
    eventually_sync,
)


async def test_eventually_returns_the_first_truthy_value() -> None:
    calls = []

    def check() -> list[int]:
        calls.append(1)
        return [len(calls)] if len(calls) >= 3 else []

    assert await eventually(check) == [3]


async def test_eventually_awaits_an_async_check_and_retries_a_failed_assert() -> None:
    calls = []

    async def check() -> str:
        calls.append(1)
        assert len(calls) >= 2, "not yet"
        return "done"

    assert await eventually(check) == "done"
    assert len(calls) == 2


async def test_eventually_names_what_it_awaited_and_the_last_value() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError) as failed:
        await eventually(lambda: 0, 0.1, what="the answer")
    assert time.monotonic() - started < 2
    assert str(failed.value) == "waited 0.1 s for the answer; last seen: 0"
    with pytest.raises(AssertionError, match=r"last seen: AssertionError\('too few'\)"):
        await eventually(_too_few, 0.05)


def _too_few() -> None:
    raise AssertionError("too few")


async def test_eventually_stops_at_once_on_another_error() -> None:
    with pytest.raises(ZeroDivisionError):
        await eventually(lambda: 1 / 0, 5)


def test_eventually_sync_polls_outside_the_loop() -> None:
    deadline = time.monotonic() + 0.1
    assert eventually_sync(lambda: time.monotonic() > deadline, 2) is True
    with pytest.raises(AssertionError, match=r"waited 0\.05 s for never"):
        eventually_sync(lambda: False, 0.05, what="never")


async def test_assert_nothing_within_fails_as_soon_as_something_happens() -> None:
    await assert_nothing_within(0.05, lambda: False)
    started, deadline = time.monotonic(), time.monotonic() + 0.05
    with pytest.raises(AssertionError, match="expected no event within 5 s, but saw True"):
        await assert_nothing_within(5, lambda: time.monotonic() > deadline, what="no event")
    assert time.monotonic() - started < 2


async def test_the_event_log_records_what_the_hub_receives_after_its_caches() -> None:
    hub = Hub()
    seen_by_cache: list[events.Event] = []
    hub.listeners.append(seen_by_cache.append)
    with capture_events(SimpleNamespace(state=SimpleNamespace(hub=hub))) as log:
        await hub.handle(events.to_wire(events.BlocksChanged(7, [8])))  # from Redis: a dict
        await hub.handle(events.Unbanned(9))
        found = await log.wait_for(events.BlocksChanged, user_id=7)
        assert found == events.BlocksChanged(7, [8]) and seen_by_cache[0] == found
        assert log.matching(events.Unbanned) == [events.Unbanned(9)]
        with pytest.raises(AssertionError) as failed:
            await log.wait_for(events.Unbanned, 0.05, user_id=1)
        assert "a Unbanned(user_id=1) event" in str(failed.value)
        assert "Unbanned(user_id=9)" in str(failed.value)  # the last events, to compare
    assert hub.listeners == [seen_by_cache.append]  # detached afterwards
