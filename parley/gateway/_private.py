"""Every use the gateway makes of a dependency's private API, in one place.

Each is a fast path or a door Starlette keeps shut; tests/unit/test_gateway_private.py
checks each one's presence and shape, so an upgrade that moves it fails there, by name,
rather than somewhere in the proxy. (The server's are in modules of their own.)
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
