"""Redis calls beyond the pool's size wait for a connection instead of failing; a Lane
(one held connection, calls made meanwhile pipelined) answers each caller with its own
reply, whatever fails midway."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.exceptions

from parley import redisclient
from tests.conftest import REDIS_URL, need_redis
from tests.waiting import eventually


async def test_more_concurrent_calls_than_connections_all_succeed() -> None:
    await need_redis()
    client = redisclient.connect(REDIS_URL)
    try:
        # Each BLPOP holds its connection for 50 ms (the key is never filled): 4× the pool's
        # size at once. A plain client of the same size fails with MaxConnectionsError.
        key = f"parley-test-{uuid.uuid4().hex}"
        count = 4 * redisclient.CONNECTIONS
        calls = [client.blpop([key], timeout=0.05) for _ in range(count)]
        answers = await asyncio.wait_for(asyncio.gather(*calls), 30)
        assert answers == [None] * count
        assert await client.ping() is True
    finally:
        await client.aclose()


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    await need_redis()
    made = redisclient.connect(REDIS_URL)
    yield made
    await made.aclose()


@pytest.fixture
def key() -> str:
    return f"parley-test-{uuid.uuid4().hex[:8]}:lane"


async def test_concurrent_callers_each_get_their_own_reply(client: Any, key: str) -> None:
    """50 calls at once: the first goes alone, the 49 made meanwhile go together
    (pipelined); each caller gets its own reply, an error reply only its own caller."""
    lane = redisclient.Lane(client)
    await client.mset({f"{key}:{n}": f"value {n}" for n in range(50)})
    try:

        async def one(n: int) -> tuple[Any, Any]:
            if n % 4 == 0:
                return await lane.call("ECHO", f"echo {n}"), f"echo {n}".encode()
            if n % 4 == 1:
                return await lane.call("EVAL", "return ARGV[1] * 2", 0, n), 2 * n
            if n % 4 == 2:
                return await lane.call("GET", f"{key}:{n}"), f"value {n}".encode()
            with pytest.raises(redis.exceptions.NoScriptError):
                await lane.call("EVALSHA", f"{n:040d}", 0)
            return None, None

        answers = await asyncio.gather(*(one(n) for n in range(50)))
        assert all(got == wanted for got, wanted in answers), answers
    finally:
        await lane.close()
        await client.delete(*[f"{key}:{n}" for n in range(50)])


async def _sent_blpop(client: Any, connection: int) -> None:
    """Waits until Redis ran a BLPOP on the lane's connection (it blocks there)."""

    async def blocked() -> bool:
        (info,) = await client.client_list(client_id=[connection])
        return bool(info["cmd"] == "blpop")

    await eventually(blocked, what=f"a BLPOP on connection {connection}")


async def test_a_call_cancelled_while_waiting_is_not_sent(client: Any, key: str) -> None:
    lane = redisclient.Lane(client)
    connection = await lane.call("CLIENT", "ID")
    in_flight = asyncio.create_task(lane.call("BLPOP", key, 0.2))
    await _sent_blpop(client, connection)
    cancelled = asyncio.create_task(lane.call("SET", f"{key}:never", 1))
    kept = asyncio.create_task(lane.call("SET", f"{key}:kept", 1))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await in_flight is None
    assert await kept == b"OK"
    assert cancelled.cancelled()
    assert await client.exists(f"{key}:never", f"{key}:kept") == 1
    await lane.close()
    await client.delete(f"{key}:kept")


async def test_an_error_reply_keeps_the_connection(client: Any) -> None:
    lane = redisclient.Lane(client)
    connection = await lane.call("CLIENT", "ID")
    with pytest.raises(redis.exceptions.NoScriptError):
        await lane.call("EVALSHA", "0" * 40, 0)
    with pytest.raises(redis.exceptions.ResponseError):
        await lane.call("NO-SUCH-COMMAND")
    assert await lane.call("CLIENT", "ID") == connection
    await lane.close()


async def test_a_call_cancelled_midway_does_not_hand_its_reply_to_the_next(
    client: Any, key: str
) -> None:
    """The BLPOP's reply would come once the key is filled: its connection is dropped, so
    the next caller reads its own reply, on a new connection."""
    lane = redisclient.Lane(client)
    connection = await lane.call("CLIENT", "ID")
    waiting = asyncio.create_task(lane.call("BLPOP", key, 2))
    await _sent_blpop(client, connection)  # sent, its reply not read
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await client.rpush(key, "late")
    assert await lane.call("ECHO", "mine") == b"mine"
    assert await lane.call("CLIENT", "ID") != connection
    await lane.close()
    await client.delete(key)


async def test_a_killed_connection_fails_at_most_one_call(client: Any) -> None:
    lane = redisclient.Lane(client)
    connection = await lane.call("CLIENT", "ID")
    await client.client_kill_filter(_id=connection)
    with contextlib.suppress(redis.exceptions.ConnectionError):  # unless seen in time
        assert await lane.call("ECHO", "first") == b"first"
    assert await lane.call("ECHO", "second") == b"second"
    assert await lane.call("CLIENT", "ID") != connection
    await lane.close()


async def test_a_connection_killed_during_a_call_fails_that_call_only(
    client: Any, key: str
) -> None:
    lane = redisclient.Lane(client)
    connection = await lane.call("CLIENT", "ID")
    waiting = asyncio.create_task(lane.call("BLPOP", key, 2))
    queued = asyncio.create_task(lane.call("ECHO", "queued"))
    await _sent_blpop(client, connection)
    await client.client_kill_filter(_id=connection)
    with pytest.raises(redis.exceptions.ConnectionError):
        await waiting
    assert await queued == b"queued"
    await lane.close()


async def test_a_lane_gives_its_connection_back_when_closed(client: Any) -> None:
    lane = redisclient.Lane(client)
    connection = await lane.call("CLIENT", "ID")
    await lane.close()
    assert await client.client_id() == connection  # the pool's one connection, reused
    assert await lane.call("ECHO", "again") == b"again"  # a closed lane takes another
    await lane.close()
