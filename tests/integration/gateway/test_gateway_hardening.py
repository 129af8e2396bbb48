"""Gateway hardening: upstream flags, body limits, per-IP concurrency, upstream health."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from parley.cli import build_settings, make_parser
from parley.gateway.app import create_app

from .conftest import JWT_SECRET, RunningGateway, free_port


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_"))}
    return {**env, "JWT_SECRET": JWT_SECRET, "LOG_LEVEL": "warning", **extra}


def test_upstream_flag_takes_a_comma_separated_list_and_repeats(tmp_path: Any) -> None:
    argv = ["gateway", "--data-dir", str(tmp_path), "--upstream", "http://a:5001, http://b:5002/",
            "--upstream", "https://c.internal"]  # fmt: skip
    settings = build_settings(make_parser().parse_args(argv))
    expected = ["http://a:5001", "http://b:5002", "https://c.internal"]
    assert settings.upstream_urls == expected
    gateway = create_app(settings.model_copy(update={"jwt_secret": JWT_SECRET}))
    assert [u.url for u in gateway.pool.upstreams] == expected


@pytest.mark.parametrize(
    ("flag", "env", "shown"),
    [
        ("http://a:5001,localhost:5002", None, "'localhost:5002' must look like http://host:port"),
        ("http//a:5001", None, "'http//a:5001' must look like http://host:port"),
        ("http://a:99999", None, "'http://a:99999' is not a valid URL"),
        ("http://a:5001/api", None, "no path or query"),
        (None, "http://a:5001,ftp://b", "'ftp://b' must look like http://host:port"),
        (None, "http://[::1:5001", "is not a valid URL"),
    ],
)
def test_malformed_upstream_stops_the_gateway_at_start_with_code_2(
    tmp_path: Any, flag: str | None, env: str | None, shown: str
) -> None:
    args = [sys.executable, "-m", "parley.cli", "gateway", "--port", "1", "--gateway-port", "2",
            "--data-dir", str(tmp_path)]  # fmt: skip
    if flag is not None:
        args += ["--upstream", flag]
    extra = {"PARLEY_UPSTREAMS": env} if env is not None else {}
    result = subprocess.run(args, env=_env(**extra), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Invalid configuration: PARLEY_UPSTREAMS: upstream ")
    assert shown in result.stderr
    assert "Traceback" not in result.stderr


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `parley server` allowing two sockets per user."""
    port = free_port()
    args = [sys.executable, "-m", "parley.cli", "server", "--port", str(port),
            "--data-dir", str(tmp_path_factory.mktemp("small-server"))]  # fmt: skip
    env = {k: v for k, v in _env().items() if k not in ("DATABASE_URL", "DB_HOST")}
    env.update(PARLEY_MAX_SOCKETS_PER_USER="2", PARLEY_RATE_LOGIN="1000/minute")
    process = subprocess.Popen(args, env=env)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


async def test_socket_limit_per_user_is_a_429_through_the_gateway(
    small_server: str, make_gateway: Any
) -> None:
    front: RunningGateway = make_gateway([small_server])
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=20) as http:
        response = await http.post(
            "/service/api/register",
            json={"username": "sockets_gw", "email": "sg@example.com", "password": "pw-123456"},
        )
    assert response.status_code == 201, response.text
    token = response.json()["access_token"]
    url = f"{front.ws_url}/ws?token={token}"
    first = await websockets.connect(url, proxy=None)
    second = await websockets.connect(url, proxy=None)
    try:
        for ws in (first, second):
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, proxy=None)
        assert refused.value.response.status_code == 429
        body = json.loads(refused.value.response.body)
        assert body["code"] == "rate_limited"
        assert "at most 2" in body["detail"]
        assert front.app.pool.is_up(front.app.pool.upstreams[0])
    finally:
        await first.close()
        await second.close()
    await asyncio.sleep(0.3)
    third = await websockets.connect(url, proxy=None)  # the slots came back
    assert json.loads(await asyncio.wait_for(third.recv(), 5))["type"] == "hello"
    await third.close()
