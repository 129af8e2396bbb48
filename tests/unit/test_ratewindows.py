"""The one moving-window implementation (parley/ratewindows.py), in memory and on a real
Redis, driven by a FakeClock: what a hit and a peek answer, the window's boundary, refill,
a budget shared through Redis; and the gateway's RateLimits on top of it (RateLimit
headers, Retry-After, fail-open when Redis is down)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from parley import ratewindows
from parley.config import Settings
from parley.gateway.ratelimit import RateLimits
from parley.ratewindows import MemoryWindows, Rate, RedisWindows, Window, make_windows
from tests.conftest import free_port
from tests.fake_clock import FakeClock

KEY = "LIMITER/send/42/3/1/minute"


def new_prefix() -> str:
    return f"parley-test-{uuid.uuid4().hex[:8]}:limits"


@pytest.fixture
async def windows(
    redis_url: str | None,
) -> AsyncIterator[tuple[MemoryWindows | RedisWindows, FakeClock]]:
    clock = FakeClock()
    made = make_windows(redis_url, new_prefix(), clock)
    yield made, clock
    if isinstance(made, RedisWindows):
        await made.reset()
        await made.redis.aclose()


async def hit(windows: MemoryWindows | RedisWindows, rate: Rate, key: str = KEY) -> Window:
    return (
        windows.hit(key, rate)
        if isinstance(windows, MemoryWindows)
        else await windows.hit(key, rate)
    )


async def peek(windows: MemoryWindows | RedisWindows, rate: Rate, key: str = KEY) -> Window:
    if isinstance(windows, MemoryWindows):
        return windows.peek(key, rate)
    return await windows.peek(key, rate)


def test_a_rate_keeps_the_limits_package_key_names() -> None:
    rate = Rate.parse("3/minute")
    assert (rate.amount, rate.expiry) == (3, 60)
    assert rate.key_for("send", 42) == KEY
    assert Rate.parse("10 per 2 seconds").key_for("ip", "::1") == "LIMITER/ip/::1/10/2/second"


async def test_hits_answer_room_remaining_and_reset(
    windows: tuple[MemoryWindows | RedisWindows, FakeClock],
) -> None:
    store, clock = windows
    rate = Rate.parse("3/minute")
    answers = []
    for _ in range(3):
        answers.append(await hit(store, rate))
        await clock.advance(10)
    assert answers == [(True, 2, 60.0), (True, 1, 50.0), (True, 0, 40.0)]
    assert await hit(store, rate) == (False, 0, 30.0)  # at 30 s, refused, not counted
    assert await peek(store, rate) == (False, 0, 30.0)
    assert await hit(store, rate, "LIMITER/send/43/3/1/minute") == (True, 2, 60.0)


async def test_a_use_counts_while_newer_than_now_minus_expiry(
    windows: tuple[MemoryWindows | RedisWindows, FakeClock],
) -> None:
    store, clock = windows
    rate = Rate.parse("1/minute")
    assert (await hit(store, rate))[0]
    await clock.advance(59.999)
    allowed, remaining, reset = await hit(store, rate)
    assert not allowed and remaining == 0 and reset == pytest.approx(0.001, abs=1e-4)
    await clock.advance(0.001)  # exactly 60 s after the use: it has left the window
    assert await peek(store, rate) == (True, 1, 0.0)
    assert await hit(store, rate) == (True, 0, 60.0)


async def test_a_peek_counts_nothing_and_clear_and_reset_forget(
    windows: tuple[MemoryWindows | RedisWindows, FakeClock],
) -> None:
    store, _ = windows
    rate = Rate.parse("2/minute")
    other = "LIMITER/send/7/2/1/minute"
    for _ in range(3):
        assert await peek(store, rate) == (True, 2, 0.0)
    assert [(await hit(store, rate))[0] for _ in range(3)] == [True, True, False]
    assert (await hit(store, rate, other))[0]
    if isinstance(store, MemoryWindows):
        store.clear(KEY)
    else:
        await store.clear(KEY)
    assert (await peek(store, rate))[1] == 2
    assert (await peek(store, rate, other))[1] == 1
    if isinstance(store, MemoryWindows):
        store.reset()
    else:
        await store.reset()
    assert (await peek(store, rate, other))[1] == 2


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)  # shared only there
async def test_two_processes_share_one_budget_in_redis(redis_url: str) -> None:
    clock, prefix, rate = FakeClock(), new_prefix(), Rate.parse("3/second")
    one, two = RedisWindows(redis_url, prefix, clock), RedisWindows(redis_url, prefix, clock)
    try:
        answers = [await w.hit(KEY, rate) for w in (one, two, one, two)]
        assert [(allowed, remaining) for allowed, remaining, _ in answers] == [
            (True, 2),
            (True, 1),
            (True, 0),
            (False, 0),
        ]
        key = f"{prefix}:{KEY}"
        assert await one.redis.llen(key) == 3  # one stamp per counted use
        await clock.advance(1)
        assert (await two.hit(KEY, rate))[0]
    finally:
        await one.reset()
        await one.redis.aclose()
        await two.redis.aclose()


def gateway_settings(redis_url: str | None, prefix: str = "parley-test:", **rates: str) -> Settings:
    return Settings(
        JWT_SECRET="0123456789abcdef" * 2,
        REDIS_URL=redis_url,
        REDIS_HOST=None,
        PARLEY_REDIS_PREFIX=prefix,
        **rates,
    )


async def test_the_gateway_answers_with_rate_limit_headers_and_refills(
    redis_url: str | None,
) -> None:
    clock = FakeClock()
    prefix = f"parley-test-{uuid.uuid4().hex[:8]}:"
    limits = RateLimits(
        gateway_settings(redis_url, prefix, PARLEY_RATE_USER="2/second"), clock=clock
    )
    decisions = [await limits.check_user(7) for _ in range(3)]
    assert [d.headers() if d else None for d in decisions] == [
        {"RateLimit-Limit": "2", "RateLimit-Remaining": "1", "RateLimit-Reset": "1"},
        {"RateLimit-Limit": "2", "RateLimit-Remaining": "0", "RateLimit-Reset": "1"},
        {
            "RateLimit-Limit": "2",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "1",
            "Retry-After": "1",
        },
    ]
    await clock.advance(0.99)
    again = await limits.check_user(7)
    assert again is not None and not again.allowed
    other = await limits.check_user(8)
    assert other is not None and other.allowed
    await clock.advance(0.02)
    refilled = await limits.check_user(7)
    assert refilled is not None and refilled.allowed and refilled.remaining == 1
    if redis_url:
        store = aioredis.Redis.from_url(redis_url)
        key = f"{prefix}ratelimit:LIMITER/user/7/2/1/second"
        assert await store.llen(key) == 1  # only the uses still in the window are kept
        await store.delete(*[k async for k in store.scan_iter(match=f"{prefix}*")])
        await store.aclose()


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)  # shared only there
async def test_two_gateways_share_one_budget_in_redis(redis_url: str) -> None:
    clock = FakeClock()
    prefix = f"parley-test-{uuid.uuid4().hex[:8]}:"
    settings = gateway_settings(redis_url, prefix, PARLEY_RATE_PUBLIC="3/minute")
    one, two = RateLimits(settings, clock=clock), RateLimits(settings, clock=clock)
    decisions = [await g.check_public("203.0.113.7") for g in (one, two, one)]
    await clock.advance(15)
    refused = await two.check_public("203.0.113.7")
    assert [d.remaining for d in decisions if d] == [2, 1, 0]
    assert refused is not None and refused.headers()["Retry-After"] == "45"
    store = aioredis.Redis.from_url(redis_url)
    await store.delete(*[k async for k in store.scan_iter(match=f"{prefix}*")])
    await store.aclose()


async def test_the_gateway_lets_requests_through_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    limits = RateLimits(gateway_settings(dead, PARLEY_RATE_USER="1/minute"), clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="parley.gateway"):
        assert [await limits.check_user(1) for _ in range(2)] == [None, None]
    assert "rate-limit storage unavailable" in caplog.text


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)
async def test_a_generous_limit_keeps_only_the_uses_in_its_window(redis_url: str) -> None:
    """The Redis list holds the uses still counted, not `amount` stamps: a limit of a
    million a second stays as cheap as one of ten."""
    clock = FakeClock()
    prefix = f"parley-test-{uuid.uuid4().hex[:8]}:"
    windows = RedisWindows(redis_url, prefix + "w", clock)
    rate = Rate.parse("1000000/second")
    for _ in range(300):
        assert (await windows.hit("k", rate))[0]
    store = aioredis.Redis.from_url(redis_url)
    try:
        assert await store.llen(f"{prefix}w:k") == 300
        await clock.advance(0.5)
        allowed, left, reset = await windows.hit("k", rate)
        assert (allowed, left, round(reset, 2)) == (True, 1_000_000 - 301, 0.5)
        await clock.advance(0.6)  # the first 300 left the window; the last one has not
        allowed, left, reset = await windows.hit("k", rate)
        assert (allowed, left, round(reset, 2)) == (True, 1_000_000 - 2, 0.4)
        assert await store.llen(f"{prefix}w:k") == 2
    finally:
        await store.delete(*[k async for k in store.scan_iter(match=f"{prefix}*")])
        await store.aclose()


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)
async def test_concurrent_calls_go_to_redis_together_and_count_exactly(redis_url: str) -> None:
    """Calls made while one is in flight wait and go together in one script call: 40
    concurrent hits on 4 keys of 5 uses each take far fewer than 40 round trips, and
    exactly 5 of each key's 10 are allowed, in the order they were made."""
    clock, rate = FakeClock(), Rate.parse("5/second")
    windows = RedisWindows(redis_url, new_prefix(), clock)
    keys = [f"LIMITER/user/{n}/5/1/second" for n in range(4)]
    try:
        answers = await asyncio.gather(*(windows.hit(keys[n % 4], rate) for n in range(40)))
        for k in range(4):
            mine = answers[k::4]
            assert [allowed for allowed, _, _ in mine] == [True] * 5 + [False] * 5
            assert [left for _, left, _ in mine[:5]] == [4, 3, 2, 1, 0]
            assert all(0 < reset <= 1 for _, _, reset in mine)
        assert windows.asks == 40 and windows.calls <= 3, windows.calls
        assert (await windows.peek(keys[0], rate))[:2] == (False, 0)
        await clock.advance(1)
        assert (await windows.hit(keys[0], rate))[:2] == (True, 4)
    finally:
        await windows.reset()
        await windows.redis.aclose()


async def test_every_grouped_call_gets_the_error_when_redis_is_down() -> None:
    windows = RedisWindows(f"redis://127.0.0.1:{free_port()}/0", new_prefix(), FakeClock())
    rate = Rate.parse("5/second")
    try:
        answers = await asyncio.gather(
            *(windows.hit(f"k{n}", rate) for n in range(6)), return_exceptions=True
        )
        assert all(isinstance(a, redis.exceptions.ConnectionError) for a in answers), answers
        assert windows.calls == 2  # the first alone, the five that waited together
    finally:
        await windows.redis.aclose()


@pytest.mark.parametrize("redis_url", ["redis"], indirect=True)
async def test_the_script_is_cached_again_after_a_script_flush(redis_url: str) -> None:
    """EVALSHA answers NOSCRIPT after a flush (or a restart): that call runs the script with
    EVAL, which caches it again, and counts once."""
    clock, rate = FakeClock(), Rate.parse("5/minute")
    windows = RedisWindows(redis_url, new_prefix(), clock)
    sha = hashlib.sha1(ratewindows._WINDOWS.encode()).hexdigest()
    try:
        assert await windows.hit(KEY, rate) == (True, 4, 60.0)
        await windows.redis.script_flush()
        assert await windows.redis.script_exists(sha) == [False]
        assert await windows.hit(KEY, rate) == (True, 3, 60.0)
        assert await windows.redis.script_exists(sha) == [True]
        assert await windows.peek(KEY, rate) == (True, 3, 60.0)
    finally:
        await windows.reset()
        await windows.redis.aclose()
