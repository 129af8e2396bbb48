"""Process edges: what `parley serve` binds, and no secret in any process's log."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from parley.cli import build_settings, make_parser
from parley.config import Settings
from parley.serve import spawn_args
from parley.server.app import uvicorn_config
from tests.conftest import free_port
from tests.processes import stop_process, wait_http

pytestmark = pytest.mark.live  # starts Parley as processes (docs/testing.md)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_", "DB_"))}
    for key in ("DATABASE_URL", "JWT_SECRET", "HOST", "PORT", "GATEWAY_PORT"):
        env.pop(key, None)
    return {**env, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "warning", **extra}


def _listening(port: int) -> set[str]:
    """The local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_serve_host_is_the_gateways_and_the_server_stays_on_loopback(tmp_path: Path) -> None:
    args = make_parser().parse_args(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    settings = build_settings(args)
    assert settings.host == "0.0.0.0"
    assert settings.server_host == "127.0.0.1"
    assert "--host" not in spawn_args("server", settings)
    assert spawn_args("gateway", settings)[4:6] == ["--host", "0.0.0.0"]
    assert uvicorn_config(object(), settings).host == "127.0.0.1"  # type: ignore[arg-type]
    assert settings.upstream_urls == [f"http://127.0.0.1:{settings.port}"]


def test_undocumented_host_variable_has_no_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("SERVER_HOST", "0.0.0.0")
    settings = Settings()
    assert (settings.host, settings.server_host) == ("127.0.0.1", "127.0.0.1")
    monkeypatch.setenv("PARLEY_HOST", "127.0.0.5")
    monkeypatch.setenv("PARLEY_SERVER_HOST", "127.0.0.6")
    assert (Settings().host, Settings().server_host) == ("127.0.0.5", "127.0.0.6")


def test_serve_binds_the_server_on_server_host_whatever_host_says(tmp_path: Path) -> None:
    """A real `parley serve --host 127.0.0.2`: the gateway listens there, the server on
    127.0.0.1 only (127.0.0.2 stands for a public address without exposing anything)."""
    port, gateway_port = free_port(), free_port()
    args = [sys.executable, "-m", "parley.cli", "serve", "--host", "127.0.0.2",
            "--port", str(port), "--gateway-port", str(gateway_port),
            "--data-dir", str(tmp_path / "data")]  # fmt: skip
    process = subprocess.Popen(
        args, env=_env(HOST="127.0.0.3"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.2:{gateway_port}/health", process)
        assert _listening(gateway_port) == {"127.0.0.2"}
        assert _listening(port) == {"127.0.0.1"}
        assert httpx.get(f"http://127.0.0.2:{gateway_port}/health", trust_env=False).json()[
            "checks"
        ]["upstreams"] == [{"name": "upstream-1", "status": "ok"}]
    finally:
        stop_process(process)


async def _session_with_every_kind_of_secret(gateway: str, server: str) -> list[str]:
    """Registers, logs in, refreshes, changes the password, opens sockets every way there is;
    returns every token, refresh token and password it used."""
    secrets: list[str] = []
    old, new, wrong = "old Pass-word 1!", "new Pass-word 2!", "wrong Pass-word 3!"
    secrets += [old, new, wrong]
    origin = {"Origin": gateway}

    def keep(response: httpx.Response) -> dict[str, str]:
        assert response.status_code in (200, 201), response.text
        pair = response.json()
        secrets.extend([pair["access_token"], pair["refresh_token"]])
        return {"access": pair["access_token"], "refresh": pair["refresh_token"]}

    async with httpx.AsyncClient(base_url=gateway, trust_env=False, timeout=20) as http:
        http.cookies = httpx.Cookies()
        account = {"username": "logcheck", "email": "logcheck@example.com", "password": old}
        first = keep(await http.post("/service/api/register", json=account))
        seed = await http.post(
            "/api/v1/users",
            json={"username": "seedlog", "email": "seedlog@example.com", "password": old},
        )
        assert seed.status_code == 201, seed.text
        login = {"username": "logcheck", "password": old}
        second = keep(await http.post("/service/api/login", json=login))
        by_mail = {"username": "logcheck@example.com", "password": old}
        keep(await http.post("/service/api/login", json=by_mail))
        refused = await http.post("/service/api/login", json={**login, "password": wrong})
        assert refused.status_code == 401
        bearer = {"Authorization": f"Bearer {second['access']}"}
        assert (await http.get("/service/api/profile", headers=bearer)).status_code == 200
        http.cookies.clear()
        cookie = {"Cookie": f"parley_access={first['access']}"}
        assert (await http.get("/service/api/profile", headers=cookie)).status_code == 200
        await http.get(f"/service/api/profile?token={first['access']}")
        third = keep(
            await http.post("/service/api/refresh", json={"refresh_token": second["refresh"]})
        )
        http.cookies.clear()
        keep(
            await http.post(
                "/service/api/refresh",
                headers={**origin, "Cookie": f"parley_refresh={first['refresh']}"},
            )
        )
        http.cookies.clear()
        change = {"current_password": old, "new_password": new}
        changed = await http.post(
            "/service/api/password",
            json=change,
            headers={"Authorization": f"Bearer {third['access']}"},
        )
        assert changed.status_code == 204, changed.text
        last = keep(await http.post("/service/api/login", json={**login, "password": new}))
    token = last["access"]
    bad = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    secrets.append(bad)
    gw_ws, server_ws = "ws" + gateway.removeprefix("http"), "ws" + server.removeprefix("http")
    opened = [
        f"{gw_ws}/ws?token={token}",
        f"{gw_ws}/service/ws?token={token}",
        f"{server_ws}/ws?token={token}",
        f"{server_ws}/service/ws?token={token}",
    ]
    for url in opened:
        async with websockets.connect(url, proxy=None) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
    for base in (gw_ws, server_ws):
        async with websockets.connect(
            f"{base}/ws", proxy=None, additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
        host = base.removeprefix("ws://")
        async with websockets.connect(
            f"{base}/ws",
            proxy=None,
            additional_headers={"Cookie": f"parley_access={token}", "Origin": f"http://{host}"},
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "hello"
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(f"{base}/ws?token={bad}", proxy=None)
    return secrets


async def test_no_log_line_of_any_process_carries_a_secret(tmp_path: Path) -> None:
    port, gateway_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    args = [sys.executable, "-m", "parley.cli", "serve", "--port", str(port),
            "--gateway-port", str(gateway_port), "--data-dir", str(tmp_path / "data")]  # fmt: skip
    env = _env(LOG_LEVEL="debug", PARLEY_RATE_LOGIN="1000/minute")
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{gateway_port}/health", process)
        secrets = await _session_with_every_kind_of_secret(
            f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{port}"
        )
    finally:
        await asyncio.to_thread(stop_process, process)
    output = log.read_text()
    assert "WebSocket /ws?token=[redacted]" in output  # the handshake lines are there, cleaned
    assert "Parley is running" in output and "DEBUG" in output
    for secret in secrets:
        assert secret not in output, f"a secret is in the logs: {secret[:12]}…"
        if secret.count(".") == 2:  # a JWT: not even its signature
            assert secret.rsplit(".", 1)[1] not in output
