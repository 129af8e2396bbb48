"""The server's Throttle on the injected clock: moving windows counted exactly, in memory and
in Redis, refilled when the (fake) clock moves past a use's window and not before; RateLimited
carries Retry-After."""

from __future__ import annotations

import uuid

import pytest

from parley import errors
from parley.ratewindows import MemoryWindows
from parley.server.throttle import Throttle
from tests.fake_clock import FakeClock


def throttle(limits: dict[str, str], redis_url: str | None, clock: FakeClock) -> Throttle:
    return Throttle(
        limits, redis_url=redis_url, prefix=f"parley-test-{uuid.uuid4().hex[:8]}:", clock=clock
    )


async def test_a_moving_window_counts_each_key_apart() -> None:
    throttle = Throttle({"send": "3/second"}, redis_url=None, prefix="")
    assert [await throttle.allow("send", 1) for _ in range(4)] == [True, True, True, False]
    assert await throttle.allow("send", 2)
    await throttle.clear("send", 1)
    assert await throttle.allow("send", 1)


async def test_a_window_refills_when_the_clock_moves_not_before(redis_url: str | None) -> None:
    clock = FakeClock()
    limits = throttle({"send": "3/second"}, redis_url, clock)
    assert [await limits.allow("send", 1) for _ in range(4)] == [True, True, True, False]
    await clock.advance(0.5)
    assert await limits.allow("send", 2)  # user 2's window starts at 0.5
    await clock.advance(0.49)
    assert not await limits.allow("send", 1)  # 0.99 s after the uses: still full
    with pytest.raises(errors.RateLimited) as limited:
        await limits.hit("send", 1)
    assert limited.value.retry_after == 1
    await clock.advance(0.02)  # 1.01 s: the three uses have left the window
    assert [await limits.allow("send", 1) for _ in range(4)] == [True, True, True, False]
    await limits.reset()


async def test_retry_after_counts_down_on_the_clock(redis_url: str | None) -> None:
    clock = FakeClock()
    limits = throttle({"login": "2/minute"}, redis_url, clock)
    await limits.hit("login", "alice")
    await clock.advance(20)
    await limits.hit("login", "alice")
    for waited, retry_after in [(0, 40), (15.5, 25), (24, 1)]:
        await clock.advance(waited)
        with pytest.raises(errors.RateLimited) as limited:
            await limits.check("login", "alice")
        assert limited.value.retry_after == retry_after
    await clock.advance(0.6)  # 60.1 s after the first use: one is free again
    await limits.check("login", "alice")
    await limits.hit("login", "alice")
    with pytest.raises(errors.RateLimited) as limited:
        await limits.hit("login", "alice")
    assert limited.value.retry_after == 20  # the second use, at 20 s, leaves at 80 s
    await limits.reset()


async def test_check_counts_nothing_and_clear_gives_the_uses_back(redis_url: str | None) -> None:
    clock = FakeClock()
    limits = throttle({"login": "2/minute"}, redis_url, clock)
    for _ in range(5):
        await limits.check("login", "bob")
    assert await limits.allow("login", "bob") and await limits.allow("login", "bob")
    with pytest.raises(errors.RateLimited):
        await limits.check("login", "bob")
    await limits.clear("login", "bob")
    await limits.check("login", "bob")
    await limits.reset()


async def test_keys_without_a_use_left_are_forgotten_on_the_clock() -> None:
    clock = FakeClock()
    limits = Throttle({"send": "2/second"}, redis_url=None, prefix="", clock=clock)
    windows = limits._windows
    assert isinstance(windows, MemoryWindows)
    for user in range(50):
        assert await limits.allow("send", user)
    assert len(windows.uses) == 50
    await clock.advance(0.9)
    assert await limits.allow("send", 999)
    assert len(windows.uses) == 51  # not expired yet
    await clock.advance(0.2)  # users 0..49's uses expired, and a pass is due
    assert await limits.allow("send", 999)
    assert list(windows.uses) == ["LIMITER/send/999/2/1/second"]
    assert [await limits.allow("send", 0) for _ in range(3)] == [True, True, False]
