"""Process edges: what `parley serve` binds, and no secret in any process's log."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from parley.cli import build_settings, make_parser
from parley.config import Settings
from parley.serve import spawn_args
from parley.server.app import uvicorn_config
from tests.conftest import free_port


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


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
        _wait_http(f"http://127.0.0.2:{gateway_port}/health", process)
        assert _listening(gateway_port) == {"127.0.0.2"}
        assert _listening(port) == {"127.0.0.1"}
        assert httpx.get(f"http://127.0.0.2:{gateway_port}/health", trust_env=False).json()[
            "checks"
        ]["upstreams"] == [{"name": "upstream-1", "status": "ok"}]
    finally:
        _stop(process)
