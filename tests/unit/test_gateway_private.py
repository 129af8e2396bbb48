"""The gateway's uses of dependencies' private APIs (parley/private_api.py) still hold:
an upgrade of Starlette or uvicorn that moves one fails here, naming it."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import uvicorn
from starlette import _utils
from starlette.types import Message
from starlette.websockets import WebSocket
from uvicorn.server import ServerState

from parley.gateway.relay import RelayedClient
from parley.private_api import UVICORN_PROTOCOL_STATE, raw_channel, route_path


def test_route_path_is_starlettes_path_without_the_root_path() -> None:
    assert list(inspect.signature(_utils.get_route_path).parameters) == ["scope"]
    assert route_path({"type": "websocket", "path": "/ws", "root_path": ""}) == "/ws"
    assert route_path({"type": "websocket", "path": "/chat/ws", "root_path": "/chat"}) == "/ws"
    assert route_path({"type": "http", "path": "/chat", "root_path": "/chat"}) == ""


async def test_raw_channel_is_the_asgi_send_and_receive_themselves() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    websocket = WebSocket({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    raw_send, raw_receive = raw_channel(websocket)
    assert raw_send is send
    assert raw_receive is receive
    relayed = {"type": "parley.relay.send", "data": b"\x81\x00"}
    with pytest.raises(RuntimeError):
        await websocket.send(relayed)  # the wrapper refuses it: the relay needs the raw send
    await raw_send(relayed)
    assert sent == [{"type": "parley.relay.send", "data": b"\x81\x00"}]


async def test_uvicorns_protocol_has_the_state_the_relay_reads() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    config = uvicorn.Config(app, ws=RelayedClient, lifespan="off")
    config.load()
    protocol = RelayedClient(config=config, server_state=ServerState(), app_state={})
    missing = [name for name in UVICORN_PROTOCOL_STATE if not hasattr(protocol, name)]
    assert not missing, f"uvicorn's WebSocketsSansIOProtocol no longer has {missing}"
    assert callable(protocol.conn.send_close)
    assert callable(protocol.conn.data_to_send)
    assert callable(protocol.loop.call_later)
    assert protocol.close_sent is False
    assert protocol.disconnected is False
    assert protocol.read_paused is False
    assert protocol.handshake_complete is False
    assert protocol.initial_response is None
    assert isinstance(protocol.close_timeout, float)
    for method in ("handle_connect", "send", "data_received", "connection_lost"):
        assert callable(getattr(super(RelayedClient, protocol), method)), method
