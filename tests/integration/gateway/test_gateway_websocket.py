"""The WebSocket relay: handshake auth, frames both ways, close codes, size limits, shutdown."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.waiting import eventually

from .conftest import RunningGateway, Upstream, token_for


def connect(url: str, **kwargs: Any) -> Any:
    return websockets.connect(url, proxy=None, open_timeout=5, **kwargs)


async def closed_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def test_round_trip_with_auth_forwarded(gateway: RunningGateway, upstream: Upstream) -> None:
    token = token_for(4)
    url = f"{gateway.ws_url}/ws?token={token}&v=2"
    async with connect(url, origin=gateway.url) as ws:  # type: ignore[arg-type]
        hello = json.loads(await ws.recv())
        assert hello == {"type": "hello", "query": "v=2"}
        await ws.send('{"type":"ping"}')
        assert await ws.recv() == '{"type":"ping"}'
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
    seen = [e for e in upstream.seen if e.get("ws")][-1]
    assert seen["headers"]["authorization"] == [f"Bearer {token}"]
    assert seen["headers"]["origin"] == [gateway.url]
    assert seen["headers"]["x-forwarded-for"] == ["127.0.0.1"]
    assert "token" not in seen["query"]


async def test_service_ws_path_and_cookie_auth(gateway: RunningGateway, upstream: Upstream) -> None:
    cookie = f"parley_access={token_for(4)}"
    url = f"{gateway.ws_url}/service/ws"
    async with connect(url, origin=gateway.url, additional_headers={"Cookie": cookie}) as ws:  # type: ignore[arg-type]
        assert json.loads(await ws.recv())["type"] == "hello"
    seen = [e for e in upstream.seen if e.get("ws")][-1]
    assert seen["headers"]["cookie"] == [cookie]


async def test_cookie_handshake_from_another_site_is_refused(gateway: RunningGateway) -> None:
    cookie = {"Cookie": f"parley_access={token_for(4)}"}
    with pytest.raises(InvalidStatus) as info:
        async with connect(
            f"{gateway.ws_url}/ws", origin="https://evil.example", additional_headers=cookie
        ):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403


@pytest.mark.parametrize("token", [None, "garbage", token_for(1, ttl=-100)])
async def test_bad_token_gets_401_before_upgrade(
    gateway: RunningGateway, upstream: Upstream, token: str | None
) -> None:
    before = len(upstream.seen)
    url = f"{gateway.ws_url}/ws" + (f"?token={token}" if token else "")
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    assert info.value.response.status_code == 401
    assert json.loads(info.value.response.body or b"{}")["code"] == "unauthorized"
    assert len(upstream.seen) == before


async def test_upstream_refusal_is_passed_on(gateway: RunningGateway) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{gateway.ws_url}/ws?deny=503&token={token_for(1)}"):
            pass
    assert info.value.response.status_code == 503
    assert json.loads(info.value.response.body or b"{}")["code"] == "denied"


@pytest.mark.parametrize("code", [4001, 4003, 1013, 1012, 1001, 1000])
async def test_upstream_close_codes_pass_through(gateway: RunningGateway, code: int) -> None:
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}") as ws:
        await ws.recv()
        await ws.send(f"close:{code}")
        assert await closed_code(ws) == code


async def test_client_close_code_reaches_upstream(
    gateway: RunningGateway, upstream: Upstream
) -> None:
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}") as ws:
        await ws.recv()
        await ws.close(4321)
    await eventually(lambda: upstream.ws_closes[-1:] == [4321], what="the close code upstream")


async def test_oversized_client_message_closes_1009(gateway: RunningGateway) -> None:
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}", max_size=None) as ws:
        await ws.recv()
        await ws.send("z" * (64 * 1024 + 1))
        assert await closed_code(ws) == 1009


async def test_upstream_message_over_the_clients_limit_reaches_it(gateway: RunningGateway) -> None:
    """The 64 KiB limit is on what clients send; what the server sends passes whole."""
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}", max_size=None) as ws:
        await ws.recv()
        for size in (1000, 64 * 1024 + 10, 2 << 20):
            await ws.send(f"big:{size}")
            assert await asyncio.wait_for(ws.recv(), 10) == "y" * size
        await ws.send("still-open")
        assert await asyncio.wait_for(ws.recv(), 5) == "still-open"


async def test_many_frames_keep_order(gateway: RunningGateway) -> None:
    async with connect(f"{gateway.ws_url}/ws?token={token_for(2)}") as ws:
        await ws.recv()
        for i in range(300):
            await ws.send(f"m{i}")
        got = [await ws.recv() for _ in range(300)]
    assert got == [f"m{i}" for i in range(300)]


async def test_gateway_shutdown_closes_with_1001(make_upstream: Any, make_gateway: Any) -> None:
    up = make_upstream()
    running: RunningGateway = make_gateway([up.url])
    async with connect(f"{running.ws_url}/ws?token={token_for(2)}") as ws:
        await ws.recv()
        stopping = asyncio.get_running_loop().run_in_executor(None, running.runner.stop)
        assert await closed_code(ws) == 1001
        await stopping
    await eventually(lambda: up.ws_closes, what="the upstream closed")
    assert up.ws_closes == [1001]


async def test_gateway_shutdown_refuses_the_reconnects_it_causes(
    make_upstream: Any, make_gateway: Any
) -> None:
    """Clients told 1001 reconnect at once, as the web client does: the listener is closed
    before the sockets are, so no attempt reaches the stopping gateway (they go to
    another one), and the stop is prompt."""
    up = make_upstream()
    running: RunningGateway = make_gateway([up.url])
    url = f"{running.ws_url}/ws?token={token_for(2)}"
    sockets = [await connect(url) for _ in range(20)]
    for ws in sockets:
        await ws.recv()
    refused: list[str] = []

    async def reconnect_when_closed(ws: ClientConnection) -> int:
        code = await closed_code(ws)
        try:
            again = await asyncio.wait_for(connect(url), 3)
        except Exception as exc:  # what the attempt met is the assertion
            refused.append(type(exc).__name__)
        else:
            refused.append("opened")
            await again.close()
        return code

    loop = asyncio.get_running_loop()
    started = loop.time()
    stopping = loop.run_in_executor(None, running.runner.stop)
    codes = await asyncio.gather(*(reconnect_when_closed(ws) for ws in sockets))
    await stopping
    assert codes == [1001] * len(sockets)
    # the listener was closed before any socket: never accepted (before, each attempt
    # was accepted, then dropped or relayed until the graceful timeout)
    assert refused == ["ConnectionRefusedError"] * len(sockets)
    assert loop.time() - started < 5  # not the graceful timeout (10 s)
