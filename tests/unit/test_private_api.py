"""The private APIs of dependencies Parley relies on still exist and behave as used.

When an upgrade breaks one, these fail first, naming it (rather than a slow socket that
is never dropped, or a writer that cannot store). Bounds in pyproject.toml keep an
unchecked release out; raise a bound only after these pass on the new version."""

from __future__ import annotations

import asyncio
import inspect
import signal
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import uvicorn
from sqlalchemy.pool import AsyncAdaptedQueuePool
from starlette.websockets import WebSocket
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from parley.private_api import abort_transport, defer_signal, route_path
from parley.server.db.batch import run_in_sqlite_thread
from parley.server.db.session import CountingPool, make_engine
from parley.wsserver import SansIOWebSocket


async def _app(scope: Any, receive: Any, send: Any) -> None:
    return None


def test_starlette_route_path_strips_the_root_path() -> None:
    assert list(inspect.signature(route_path).parameters) == ["scope"]
    assert route_path({"type": "websocket", "path": "/api/ws", "root_path": "/api"}) == "/ws"
    assert route_path({"type": "websocket", "path": "/ws", "root_path": ""}) == "/ws"


async def test_starlette_websocket_keeps_the_asgi_channels_that_abort_follows() -> None:
    """uvicorn's channels are its protocol's bound methods: `abort_transport` finds the
    protocol's transport through them and aborts the TCP connection."""
    protocol = SansIOWebSocket(config=_config(), server_state=ServerState(), app_state={})
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(lambda: protocol, "127.0.0.1", port)
    try:
        assert protocol.transport is transport
        ws = WebSocket({"type": "websocket"}, protocol.receive, protocol.send)
        assert (ws._receive, ws._send) == (protocol.receive, protocol.send)
        assert abort_transport(ws)
        assert transport.is_closing()
    finally:
        transport.abort()
        server.close()


def _config() -> Config:
    config = Config(_app, ws=SansIOWebSocket, lifespan="off")
    config.load()
    return config


def test_uvicorn_sans_io_protocol_has_what_wsserver_overrides_and_reads() -> None:
    protocol = SansIOWebSocket(config=_config(), server_state=ServerState(), app_state={})
    for name in ("conn", "close_sent", "read_paused", "loop", "disconnected", "queue"):
        assert hasattr(protocol, name), name
    for name in (
        "handle_connect",
        "handle_parser_exception",
        "data_received",
        "eof_received",
        "receive",
        "send",
    ):
        assert callable(getattr(WebSocketsSansIOProtocol, name, None)), name
    source = inspect.getsource(WebSocketsSansIOProtocol)
    assert "(self.scope, self.receive, self.send)" in source  # the channels the app gets
    for name in ("self.writable", "self.transport", "self.close_timer"):
        assert name in source, name


def test_uvicorn_server_re_raises_captured_signals() -> None:
    server = uvicorn.Server(_config())
    assert server._captured_signals == []
    defer_signal(server, signal.SIGTERM)
    assert server._captured_signals == [signal.SIGTERM]
    assert list(inspect.signature(uvicorn.Server.handle_exit).parameters) == [
        "self",
        "sig",
        "frame",
    ]
    assert "_captured_signals" in inspect.getsource(uvicorn.Server.capture_signals)


async def test_aiosqlite_runs_a_call_in_its_connection_thread(tmp_path: Path) -> None:
    assert list(inspect.signature(aiosqlite.Connection._execute).parameters)[:3] == [
        "self",
        "fn",
        "args",
    ]
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:

            def where(db: Any, n: int) -> tuple[str, int]:
                return threading.current_thread().name, db.execute("SELECT ?", (n,)).fetchone()[0]

            thread, value = await run_in_sqlite_thread(conn, where, 7)
        assert value == 7 and thread != threading.current_thread().name
    finally:
        await engine.dispose()


def test_sqlalchemy_pool_get_is_what_counting_pool_wraps() -> None:
    assert "_do_get" in vars(AsyncAdaptedQueuePool) or hasattr(AsyncAdaptedQueuePool, "_do_get")
    assert list(inspect.signature(AsyncAdaptedQueuePool._do_get).parameters) == ["self"]
    assert CountingPool._do_get is not AsyncAdaptedQueuePool._do_get
