"""The relay's limits end to end: a slow reader gets 1013, a fragmented oversized message 1009."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.waiting import eventually, let_time_pass

from .conftest import RunningGateway, Upstream, token_for


def connect(url: str, **kwargs: Any) -> Any:
    return websockets.connect(url, proxy=None, open_timeout=5, **kwargs)


async def _drain_until_closed(ws: Any, timeout: float = 10) -> tuple[int, int]:
    """Reads every frame until the close; returns (frames read, close code received)."""
    frames = 0
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
                frames += 1
    assert info.value.rcvd is not None, "the connection was dropped without a close frame"
    return frames, info.value.rcvd.code


async def test_fragmented_message_over_the_limit_closes_1009(gateway: RunningGateway) -> None:
    """80 fragments of 1 KiB (80 KiB > 64 KiB): a close frame 1009, not a dropped TCP (1006)."""
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}", max_size=None) as ws:
        await ws.recv()
        with pytest.raises(ConnectionClosed) as info:
            await ws.send("z" * 1024 for _ in range(80))
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None, "closed without a close frame (1006)"
        assert info.value.rcvd.code == 1009


async def test_fragmented_message_under_the_limit_is_relayed_whole(
    gateway: RunningGateway,
) -> None:
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}") as ws:
        await ws.recv()
        await ws.send(f"part{i}-" for i in range(40))
        assert await asyncio.wait_for(ws.recv(), 5) == "".join(f"part{i}-" for i in range(40))


async def test_client_that_stops_reading_is_closed_1013(
    gateway: RunningGateway, upstream: Upstream
) -> None:
    """The upstream floods a client that reads nothing: the gateway closes it with 1013
    (after the frames already on their way), and the upstream side is closed too."""
    closes_before = len(upstream.ws_closes)
    relays_before = set(gateway.app.websockets._relays)
    # max_queue=1: the client library stops reading the socket as soon as one frame waits.
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}", max_queue=1) as ws:
        await ws.recv()
        (relay,) = set(gateway.app.websockets._relays) - relays_before
        assert relay.writer is None  # no writer task until frames have to wait
        await ws.send("flood:20000:2000")  # 40 MB: far more than any buffer on the way
        await let_time_pass(2, "the client does not read")
        frames, code = await _drain_until_closed(ws)
    assert code == 1013
    assert 0 < frames < 20000
    assert relay.writer is not None
    await eventually(lambda: len(upstream.ws_closes) > closes_before, what="the upstream closed")


async def test_client_that_reads_slowly_but_keeps_up_is_not_closed(
    gateway: RunningGateway,
) -> None:
    relays_before = set(gateway.app.websockets._relays)
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}") as ws:
        await ws.recv()
        (relay,) = set(gateway.app.websockets._relays) - relays_before
        await ws.send("flood:200:1000")
        for _ in range(200):
            assert await asyncio.wait_for(ws.recv(), 5) == "f" * 1000
        await ws.send("still-open")
        assert await asyncio.wait_for(ws.recv(), 5) == "still-open"
        assert not relay.pending and not relay.end
