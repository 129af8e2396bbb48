"""Gateway tests: a real upstream app and the gateway, each under uvicorn on a free port."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from parley.config import Settings
from parley.gateway.app import Gateway, create_app
from parley.gateway.process import make_server
from parley.security import make_access_token
from tests.waiting import eventually_sync, let_time_pass

JWT_SECRET = "gateway-test-secret-" + "0123456789abcdef" * 2
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token_for(user_id: int, *, session_id: str = "0" * 32, ttl: int = 600) -> str:
    return make_access_token(JWT_SECRET, user_id=user_id, session_id=session_id, ttl_seconds=ttl)


def bearer(user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user_id)}"}


@dataclass
class Upstream:
    """A test server that records what reached it."""

    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    ws_closes: list[int] = field(default_factory=list)
    runner: ThreadServer | None = None

    def paths(self) -> list[str]:
        return [entry["path"] for entry in self.seen]


def _headers(conn: Request | WebSocket) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for name, value in conn.headers.items():
        merged.setdefault(name, []).append(value)
    return merged


def make_upstream_app(upstream: Upstream) -> Starlette:
    async def echo(request: Request) -> Response:
        digest, size, chunks = hashlib.sha256(), 0, 0
        async for chunk in request.stream():
            if chunk:
                digest.update(chunk)
                size += len(chunk)
                chunks += 1
        entry = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": _headers(request),
            "body_len": size,
            "body_sha256": digest.hexdigest(),
            "chunks": chunks,
            "upstream": upstream.url,
        }
        upstream.seen.append(entry)
        return JSONResponse(entry, headers={"x-upstream": upstream.url, "set-cookie": "a=1"})

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "checks": {"database": "ok"}})

    async def slow(request: Request) -> Response:
        upstream.seen.append({"path": "/service/slow", "headers": _headers(request)})
        await let_time_pass(float(request.query_params.get("s", "2")), "a slow upstream")
        return JSONResponse({"slow": True})

    async def big(request: Request) -> Response:
        size = int(request.query_params.get("n", "1000000"))

        async def chunks() -> Any:
            for start in range(0, size, 65536):
                yield b"x" * min(65536, size - start)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def ws(websocket: WebSocket) -> None:
        upstream.seen.append(
            {
                "path": "/service/ws",
                "headers": _headers(websocket),
                "query": websocket.url.query,
                "ws": True,
            }
        )
        slow = websocket.query_params.get("slow")
        if slow:  # a busy server: the handshake is answered late
            await let_time_pass(float(slow), "the handshake is answered late")
        deny = websocket.query_params.get("deny")
        if deny:
            await websocket.send_denial_response(
                JSONResponse({"detail": "no", "code": "denied"}, status_code=int(deny))
            )
            return
        await websocket.accept()
        await websocket.send_json({"type": "hello", "query": websocket.url.query})
        await _ws_loop(websocket, upstream)

    routes = [
        Route("/health", health),
        Route("/service/slow", slow),
        Route("/service/big", big),
        WebSocketRoute("/service/ws", ws),
        Route("/{path:path}", echo, methods=ALL_METHODS),
    ]
    return Starlette(routes=routes)


async def _ws_loop(websocket: WebSocket, upstream: Upstream) -> None:
    while True:
        try:
            message = await websocket.receive()
        except WebSocketDisconnect as exc:
            upstream.ws_closes.append(exc.code)
            return
        if message["type"] == "websocket.disconnect":
            upstream.ws_closes.append(int(message.get("code", 1000)))
            return
        text = message.get("text")
        if text is None:
            await websocket.send_bytes(message["bytes"])
        elif text.startswith("close:"):
            await websocket.close(int(text.split(":")[1]), "bye")
            return
        elif text.startswith("big:"):
            await websocket.send_text("y" * int(text.split(":")[1]))
        elif text.startswith("flood:"):  # flood:<frames>:<bytes each>, as fast as it can
            _, count, size = text.split(":")
            frame = "f" * int(size)
            try:
                for _ in range(int(count)):
                    await websocket.send_text(frame)
            except (OSError, RuntimeError, WebSocketDisconnect):
                pass
        else:
            await websocket.send_text(text)


class ThreadServer:
    """Runs a uvicorn server in a thread with its own event loop."""

    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.run, daemon=True)

    def start(self) -> ThreadServer:
        self.thread.start()
        alive = self.thread.is_alive
        eventually_sync(lambda: self.server.started or not alive(), 10, what="the server")
        if not self.server.started:
            raise RuntimeError("server did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def start_upstream() -> Upstream:
    port = free_port()
    upstream = Upstream(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        make_upstream_app(upstream),
        host="127.0.0.1",
        port=port,
        loop="asyncio",
        ws="websockets-sansio",
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws_max_size=1 << 20,
    )
    upstream.runner = ThreadServer(uvicorn.Server(config)).start()
    return upstream


@dataclass
class RunningGateway:
    url: str
    app: Gateway
    runner: ThreadServer
    settings: Settings

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


def gateway_settings(data_dir: Path, upstreams: list[str], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "PARLEY_DATA_DIR": data_dir,
        "JWT_SECRET": JWT_SECRET,
        "PARLEY_UPSTREAMS": ",".join(upstreams),
        "PARLEY_RATE_PUBLIC": "10000/second",
        "PARLEY_RATE_USER": "10000/second",
        "REDIS_URL": None,
        "REDIS_HOST": None,
        "LOG_LEVEL": "warning",
    }
    values.update(overrides)
    return Settings(**values)


def start_gateway(settings: Settings, static_dir: Path, **app_options: Any) -> RunningGateway:
    port = free_port()
    app = create_app(settings, static_dir=static_dir, **app_options)
    runner = ThreadServer(make_server(settings, app, port=port)).start()
    return RunningGateway(f"http://127.0.0.1:{port}", app, runner, settings)


@pytest.fixture(scope="session")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("web")
    (root / "chat.html").write_text("<!doctype html><title>chat</title>")
    (root / "login.html").write_text("<!doctype html><title>login</title>")
    (root / "register.html").write_text("<!doctype html><title>register</title>")
    (root / "js").mkdir()
    (root / "js" / "app.js").write_text("console.log('parley');\n")
    return root


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    server = start_upstream()
    yield server
    assert server.runner is not None
    server.runner.stop()


@pytest.fixture(scope="session")
def gateway(
    upstream: Upstream, static_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    settings = gateway_settings(
        tmp_path_factory.mktemp("gw-data"),
        [upstream.url],
        PARLEY_CORS_ORIGINS="https://app.example.com",
    )
    running = start_gateway(settings, static_dir, read_timeout=1.0)
    yield running
    running.runner.stop()


@pytest.fixture
def make_gateway(static_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """Starts extra gateways with their own settings; stops them at the end of the test."""
    started: list[RunningGateway] = []

    def make(upstreams: list[str], **overrides: Any) -> RunningGateway:
        options = {k: overrides.pop(k) for k in list(overrides) if k.islower()}
        running = start_gateway(
            gateway_settings(tmp_path, upstreams, **overrides), static_dir, **options
        )
        started.append(running)
        return running

    yield make
    for running in started:
        running.runner.stop()


@pytest.fixture
def make_upstream() -> Iterator[Any]:
    started: list[Upstream] = []

    def make() -> Upstream:
        server = start_upstream()
        started.append(server)
        return server

    yield make
    for server in started:
        assert server.runner is not None
        server.runner.stop()


def ci_requires(reason: str) -> None:
    """Skips with a visible reason, except in CI where a missing service fails the run."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def random_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"
