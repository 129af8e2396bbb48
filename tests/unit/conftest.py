"""Fixtures of the unit tests: a backend parameter, memory or a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.conftest import REDIS_URL, need


@pytest.fixture(params=["memory", "redis"])
async def redis_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None (in memory), or the test Redis's URL once it answers."""
    if request.param == "memory":
        yield None
        return
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        need("Redis", str(exc))
    finally:
        await client.aclose()
    yield REDIS_URL
