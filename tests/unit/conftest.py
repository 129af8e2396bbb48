"""Fixtures of the unit tests: a backend parameter, memory or a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import need_redis


@pytest.fixture(params=["memory", "redis"])
async def redis_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None (in memory), or the test Redis's URL once it answers."""
    yield None if request.param == "memory" else await need_redis()
