"""Client CPU per Redis call on the server's hot paths, on uvloop and the local Redis.

    .venv/bin/python -m bench.redis_calls [seconds per case] [redis url] [calls|pubsub]

Rate-limit calls (`RedisWindows.hit`, one caller, then 8 concurrent callers whose calls
group), publishes (`RedisBroker.publish`, one caller, then 8 concurrent), and received
pub/sub messages with each way of reading them (a publisher in another process sends
them one at a time, so its CPU is not counted). Prints this process's CPU
(time.process_time) per call or per message; Redis's own CPU is not counted.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import uvloop

from parley.clock import Clock
from parley.ratewindows import Rate, RedisWindows
from parley.server.realtime.broker import RedisBroker

EVENT = {"t": "users", "user_ids": [1, 2, 3], "frame": '{"type":"typing","chat_id":7}'}


async def per_call(
    seconds: float, callers: int, call: Callable[[], Awaitable[Any]]
) -> tuple[float, float]:
    """CPU µs per call and calls per second, `callers` loops calling for `seconds` (after a
    warm-up)."""
    count = 0

    async def loop(until: float) -> None:
        nonlocal count
        while time.perf_counter() < until:
            await call()
            count += 1

    await asyncio.gather(*(loop(time.perf_counter() + 0.3) for _ in range(callers)))
    count = 0
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop(time.perf_counter() + seconds) for _ in range(callers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / count * 1e6, count / wall


async def rate_limits(url: str, seconds: float) -> None:
    windows = RedisWindows(url, f"bench-{uuid.uuid4().hex[:8]}:limits", Clock())
    rate = Rate.parse("1000000/second")
    try:
        keys = itertools.cycle([f"k{n}" for n in range(50)])
        for callers in (1, 8):
            cpu, rate_ = await per_call(seconds, callers, lambda: windows.hit(next(keys), rate))
            print(f"rate-limit hit, {callers} caller(s): {cpu:.0f} µs CPU per call, {rate_:.0f}/s")
    finally:
        await windows.reset()
        await windows.redis.aclose()


async def publishes(url: str, seconds: float) -> None:
    broker = RedisBroker(url, channel=f"bench-{uuid.uuid4().hex[:8]}:events")
    try:
        for callers in (1, 8):
            cpu, rate = await per_call(seconds, callers, lambda: broker.publish(EVENT))
            print(f"publish, {callers} caller(s): {cpu:.0f} µs CPU per publish, {rate:.0f}/s")
    finally:
        await broker.close()


async def receive(pubsub: Any, how: str, count: int) -> None:
    """Reads `count` messages from `pubsub` as the broker's loop would."""
    if how == "parse_response(block=True)":  # no message dict: the raw [type, channel, data]
        while count:
            response = await pubsub.parse_response(block=True)
            if response[0] == b"message":
                count -= 1
        return
    if how == "listen()":
        async for _ in pubsub.listen():
            count -= 1
            if not count:
                return
        return
    timeout = 1.0 if how == "get_message(timeout=1.0)" else None
    while count:
        if await pubsub.get_message(timeout=timeout) is not None:
            count -= 1


async def subscriber(url: str, seconds: float, rounds: int = 3) -> None:
    """Each variant reads what a publisher process sends, one PUBLISH after another (as
    the server publishes), then a burst read from the socket's buffer (the variant's own
    cost shows more); the variants alternate, `rounds` times, and the median is printed."""
    client = aioredis.Redis.from_url(url)
    ways = (
        "get_message(timeout=1.0)",
        "get_message(timeout=None)",
        "listen()",
        "parse_response(block=True)",
    )
    try:
        for burst in (False, True):
            figures: dict[str, list[float]] = {how: [] for how in ways}
            for _ in range(rounds):
                for how in ways:
                    cpu = await received(client, url, how, int(seconds * 8000), burst=burst)
                    figures[how].append(cpu)
            for how, cpus in figures.items():
                runs = ", ".join(f"{cpu:.1f}" for cpu in cpus)
                print(
                    f"pub/sub {'burst' if burst else 'one by one'}, {how}: "
                    f"{statistics.median(cpus):.1f} µs CPU per message ({runs})"
                )
    finally:
        await client.aclose()


async def received(client: Any, url: str, how: str, count: int, *, burst: bool) -> float:
    """CPU µs per message read `how`, the first 100 not counted."""
    channel = f"bench-{uuid.uuid4().hex[:8]}:events"
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.redis_calls", "publish", url, channel, str(count)
    )
    if burst:
        await publisher.wait()
    await receive(pubsub, how, 100)
    cpu = time.process_time()
    await receive(pubsub, how, count - 100)
    cpu = time.process_time() - cpu
    await publisher.wait()
    await pubsub.aclose()
    return cpu / (count - 100) * 1e6


async def publish(url: str, channel: str, count: int) -> None:
    client = aioredis.Redis.from_url(url)
    conn = await client.connection_pool.get_connection()
    payload = b'{"t":"users","user_ids":[1,2,3],"frame":"x"}'
    for _ in range(count):  # at most one message on the way: as the server's publishes go
        await conn.send_command("PUBLISH", channel, payload)
        await conn.read_response()
    await client.connection_pool.release(conn)
    await client.aclose()


async def main(seconds: float, url: str, only: str | None) -> None:
    if only in (None, "calls"):
        await rate_limits(url, seconds)
        await publishes(url, seconds)
    if only in (None, "pubsub"):
        await subscriber(url, seconds)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "publish":
        uvloop.run(publish(args[1], args[2], int(args[3])))
    else:
        uvloop.run(
            main(
                float(args[0]) if args else 3.0,
                args[1] if len(args) > 1 else "redis://127.0.0.1:6379/0",
                args[2] if len(args) > 2 else None,
            )
        )
