"""Every use Parley (server and gateway) makes of a dependency's private API, each behind
one function.

These are not promised by their projects and may change in any release: pyproject.toml
bounds those dependencies below their next minor version, and tests/unit/test_private_api.py
checks each name and signature used here, so an upgrade that breaks one fails there,
loudly, naming it. (The writer's use of aiosqlite's lives in `server/db/batch.py`, the
WebSocket protocol's subclass of uvicorn's in `wsserver.py`, the pool's `_do_get` in
`server/db/session.py`; the same test checks them.)
"""

from __future__ import annotations

from typing import Any

from starlette._utils import get_route_path
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket


def route_path(scope: Scope) -> str:
    """The request's path without the app's `root_path`: what Starlette's router matches
    (`starlette._utils.get_route_path`)."""
    return get_route_path(scope)


def abort_transport(ws: WebSocket) -> bool:
    """Drops the TCP connection under a socket whose peer stopped reading. Starlette keeps
    the ASGI channels in `_receive` and `_send`; under uvicorn they are its protocol's
    bound methods, whose `transport` is the connection. False when none was found."""
    for channel in (ws._receive, ws._send):
        transport = getattr(getattr(channel, "__self__", None), "transport", None)
        if transport is not None:
            transport.abort()
            return True
    return False


def defer_signal(server: Any, sig: int) -> None:
    """Has uvicorn re-raise `sig` once it has stopped, as its own `handle_exit` does
    (`Server._captured_signals`), while this server goes on draining first."""
    server._captured_signals.append(sig)


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
"""What the gateway's `relay.RelayedClient` (which extends uvicorn's sans-I/O WebSocket
protocol through parley/wsserver.py) reads and sets of `WebSocketsSansIOProtocol`."""
