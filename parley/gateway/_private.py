"""Every use the gateway makes of a dependency's private API, in one place.

Each is a fast path or a door Starlette keeps shut; tests/unit/test_gateway_private.py
checks each one's presence and shape, so an upgrade that moves it fails there, by name,
rather than somewhere in the proxy. (The server's are in modules of their own.)

`relay.RelayedClient` extends uvicorn's sans-I/O WebSocket protocol (through
parley/wsserver.py) and reads its connection state: those attributes, undocumented, are
named in `UVICORN_PROTOCOL_STATE` and checked by the same test.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket


def route_path(scope: Scope) -> str:
    """The path the router matches (without the app's root path), as Starlette computes it."""
    return get_route_path(scope)


def raw_channel(websocket: WebSocket) -> tuple[Send, Receive]:
    """The socket's ASGI send and receive themselves: Starlette's wrappers would refuse the
    relay's own message type (`RELAY_SEND`) and check every frame's state."""
    return websocket._send, websocket._receive


UVICORN_PROTOCOL_STATE = {
    "conn": "websockets.ServerProtocol: send_close(), data_to_send()",
    "transport": "asyncio.Transport: write(), is_closing(), resume_reading()",
    "queue": "the ASGI receive queue: put_nowait()",
    "loop": "asyncio loop: call_later()",
    "writable": "event: is_set(), wait()",
    "close_sent": "bool",
    "disconnected": "bool",
    "read_paused": "bool",
    "handshake_complete": "bool",
    "initial_response": "a denial response in progress, or None",
    "close_timer": "the timer that closes the transport, or None",
    "close_timeout": "seconds",
}
"""What `relay.RelayedClient` reads and sets of uvicorn's `WebSocketsSansIOProtocol`."""
