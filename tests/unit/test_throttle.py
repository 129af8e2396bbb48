"""The in-process rate-limit storage: moving windows counted exactly, expired uses forgotten."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.server.throttle import LocalStorage, Throttle


async def test_a_moving_window_counts_each_key_apart() -> None:
    throttle = Throttle({"send": "3/second"}, redis_url=None, prefix="")
    assert [await throttle.allow("send", 1) for _ in range(4)] == [True, True, True, False]
    assert await throttle.allow("send", 2)
    await throttle.clear("send", 1)
    assert await throttle.allow("send", 1)


async def test_expired_uses_are_forgotten_without_worker_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handed_off: list[Any] = []

    async def to_thread(func: Any, *args: Any) -> Any:
        handed_off.append(func)
        return func(*args)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    throttle = Throttle({"send": "2/second"}, redis_url=None, prefix="")
    storage = throttle._storage
    assert isinstance(storage, LocalStorage)
    for user in range(50):
        assert await throttle.allow("send", user)
    assert len(storage.events) == 50
    await asyncio.sleep(1.1)  # every use expired, and a pass is due
    assert await throttle.allow("send", 999)
    assert list(storage.events) == ["LIMITER/send/999/2/1/second"]
    assert [await throttle.allow("send", 0) for _ in range(3)] == [True, True, False]
    assert handed_off == []
