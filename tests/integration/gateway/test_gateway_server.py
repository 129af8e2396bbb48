"""The gateway in front of a real `parley server` process, and `parley serve` itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.processes import stop_process, wait_http

from .conftest import JWT_SECRET, RunningGateway, free_port

pytestmark = [
    pytest.mark.skipif(
        not (Path(__file__).parents[3] / "parley" / "server" / "app.py").exists(),
        reason="parley.server.app is not there yet",
    ),
    pytest.mark.live,  # starts Parley as processes (docs/testing.md)
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_", "DB_"))}
    env.pop("DATABASE_URL", None)
    env.pop("JWT_SECRET", None)
    return {**env, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "warning", **extra}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    data = tmp_path_factory.mktemp("server-data")
    args = [
        sys.executable,
        "-m",
        "parley.cli",
        "server",
        "--port",
        str(port),
        "--data-dir",
        str(data),
    ]
    env = _env(JWT_SECRET=JWT_SECRET, PARLEY_RATE_LOGIN="1000/minute")
    process = subprocess.Popen(args, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture
def front(server_url: str, make_gateway: Any) -> RunningGateway:
    running: RunningGateway = make_gateway([server_url])
    return running


async def _register(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await http.post(
        "/service/api/register",
        json={"username": name, "email": f"{name}@example.com", "password": "correct horse 1"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_register_login_and_profile_through_the_gateway(front: RunningGateway) -> None:
    name = f"gw{os.getpid()}a"
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as http:
        registered = await _register(http, name)
        assert registered["user"]["username"] == name
        login = await http.post(
            "/service/api/login", json={"username": name, "password": "correct horse 1"}
        )
        assert login.status_code == 200
        token = login.json()["access_token"]
        profile = await http.get(
            "/service/api/profile", headers={"Authorization": f"Bearer {token}"}
        )
        refused = await http.get("/service/api/profile", headers={"Authorization": "Bearer nope"})
        stats = await http.get("/stats")
    assert profile.status_code == 200
    assert profile.json()["username"] == name
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    assert stats.status_code == 200
    assert stats.json()["users"] >= 1


async def test_one_users_cookies_never_reach_another_users_request(front: RunningGateway) -> None:
    """The proxy's pooled client must not keep the Set-Cookie of the answers it relays."""
    name = f"gw{os.getpid()}c"
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as first:
        registered = await first.post(
            "/service/api/register",
            json={"username": name, "email": f"{name}@example.com", "password": "correct horse 1"},
        )
        assert registered.status_code == 201 and "parley_refresh" in registered.cookies
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as stranger:
        refresh = await stranger.post("/service/api/refresh", json={})
        assert refresh.status_code == 401, refresh.text
        assert "access_token" not in refresh.json()


async def test_websocket_message_round_trip_through_the_gateway(front: RunningGateway) -> None:
    name = f"gw{os.getpid()}b"
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as http:
        token = (await _register(http, name))["access_token"]
        chats = await http.get("/service/api/chats", headers={"Authorization": f"Bearer {token}"})
    general = next(c for c in chats.json() if c["title"] == "general")
    url = f"{front.ws_url}/ws?token={token}"
    async with websockets.connect(url, proxy=None, origin=front.url) as ws:  # type: ignore[arg-type]
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["type"] == "hello"
        assert hello["user"]["username"] == name
        frame = {
            "type": "send",
            "chat_id": general["id"],
            "content": "hi via gateway",
            "client_id": "c-1",
        }
        await ws.send(json.dumps(frame))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if event["type"] == "message":
                break
    assert event["message"]["content"] == "hi via gateway"
    assert event["message"]["client_id"] == "c-1"


def test_serve_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [sys.executable, "-m", "parley.cli", "serve", "--port", str(free_port()),
                "--gateway-port", str(port), "--data-dir", str(tmp_path)]  # fmt: skip
        result = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--gateway-port" in result.stderr


async def test_serve_starts_both_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, gateway_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    args = [sys.executable, "-m", "parley.cli", "serve", "--port", str(port),
            "--gateway-port", str(gateway_port), "--data-dir", str(tmp_path / "data")]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{gateway_port}"
    try:
        await asyncio.to_thread(wait_http, base + "/health", process)
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as http:
            health = await http.get("/health")
            token = (await _register(http, "serveuser"))["access_token"]
        assert health.json()["checks"]["upstreams"] == [{"name": "upstream-1", "status": "ok"}]
        async with websockets.connect(
            f"ws://127.0.0.1:{gateway_port}/ws?token={token}", proxy=None
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        stop_process(process)
    output = log.read_text()
    assert f"Parley is running at {base}" in output
    assert "Stopped." in output
    for p in (port, gateway_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", p)) != 0
