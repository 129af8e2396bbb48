"""Redis calls beyond the pool's size wait for a connection instead of failing."""

from __future__ import annotations

import asyncio
import uuid

from parley import redisclient
from tests.conftest import REDIS_URL, need_redis


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
