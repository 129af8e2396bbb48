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
from tests.processes import wait_http
from tests.waiting import eventually, let_time_pass

from .conftest import JWT_SECRET, RunningGateway, bearer, free_port, token_for


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
@pytest.mark.live
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
        wait_http(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.live
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

    async def third_connects() -> Any:
        try:
            return await websockets.connect(url, proxy=None)
        except websockets.InvalidStatus:
            return None

    third = await eventually(third_connects, what="the slots back")
    assert json.loads(await asyncio.wait_for(third.recv(), 5))["type"] == "hello"
    await third.close()


async def _raw(url: str, head: str, *parts: bytes, pause: float = 0.0) -> tuple[int, str, str]:
    """Sends a request by hand (head, then each part after `pause`); the status line's code,
    the response head and its body. Lets a test stop sending, or send slowly."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in parts:
            await let_time_pass(pause, "a slow client")
            writer.write(part)
            await writer.drain()
        head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        top = head_bytes.decode("latin-1").lower()
        length = next(
            int(line.split(":", 1)[1])
            for line in top.splitlines()
            if line.startswith("content-length:")
        )
        body = await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
    return int(top.split()[1]), top, body.decode()


def _head(method: str, path: str, token: str, *lines: str) -> str:
    return "\n".join(
        [f"{method} {path} HTTP/1.1", "Host: x", f"Authorization: Bearer {token}", *lines, ""]
    )


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


async def test_declared_json_body_over_64k_is_413_before_a_byte_is_read(
    upstream: Any, gateway: RunningGateway
) -> None:
    head = _head("POST", "/service/api/too-big", token_for(3), "Content-Length: 65537",
                 "Content-Type: application/json")  # fmt: skip
    status, _top, body = await _raw(gateway.url, head)  # the body itself is never sent
    assert status == 413
    assert json.loads(body) == {
        "detail": "Request body larger than 65536 bytes",
        "code": "payload_too_large",
    }
    assert "/service/api/too-big" not in upstream.paths()


async def test_chunked_json_body_is_counted_and_cut_off_past_64k(
    upstream: Any, gateway: RunningGateway
) -> None:
    head = _head("PATCH", "/service/api/chunked-big", token_for(3), "Transfer-Encoding: chunked")
    parts = [_chunk(b"x" * 16384) for _ in range(5)]  # 80 KiB, no Content-Length
    status, _top, body = await _raw(gateway.url, head, *parts)
    assert status == 413
    assert json.loads(body)["code"] == "payload_too_large"
    assert "/service/api/chunked-big" not in upstream.paths()

    async def exactly_64k() -> Any:
        for _ in range(4):
            yield b"y" * 16384

    async with httpx.AsyncClient(base_url=gateway.url, trust_env=False) as http:
        ok = await http.patch("/service/api/chunked-ok", content=exactly_64k(),
                              headers=bearer(3))  # fmt: skip
    assert ok.status_code == 200
    assert ok.json()["body_len"] == 65536


async def test_uploads_keep_their_own_limit(upstream: Any, make_gateway: Any) -> None:
    front = make_gateway([upstream.url], PARLEY_MAX_ATTACHMENT_BYTES=100_000)
    limit = 100_000 + 65536
    async with httpx.AsyncClient(base_url=front.url, trust_env=False) as http:
        fits = await http.post("/service/api/chats/7/attachments", content=b"z" * limit,
                               headers=bearer(3))  # fmt: skip
        assert fits.status_code == 200 and fits.json()["body_len"] == limit
        avatar = await http.put("/service/api/profile/avatar", content=b"z" * 200_000,
                                headers=bearer(3))  # fmt: skip
        assert avatar.status_code == 200  # the avatar limit (5 MiB) is its own
    head = _head("POST", "/service/api/chats/7/attachments", token_for(3),
                 f"Content-Length: {limit + 1}")  # fmt: skip
    status, _top, body = await _raw(front.url, head)
    assert status == 413
    assert json.loads(body) == {"detail": f"Upload larger than {limit} bytes", "code": "too_large"}


@pytest.mark.parametrize("path", ["/service/api/slow-json", "/service/api/chats/7/attachments"])
async def test_a_body_slower_than_the_timeout_gets_408(
    upstream: Any, make_gateway: Any, path: str
) -> None:
    front = make_gateway([upstream.url], PARLEY_BODY_TIMEOUT=0.5)
    head = _head("POST", path, token_for(3), "Content-Length: 100")
    started = time.monotonic()
    status, top, body = await _raw(front.url, head, b"{" * 10)
    assert 0.4 < time.monotonic() - started < 5
    assert status == 408
    assert json.loads(body) == {
        "detail": "The request body arrived too slowly",
        "code": "request_timeout",
    }
    assert "connection: close" in top
    # A slow but steady sender (a byte every 0.2 s) is not cut off.
    head = _head("POST", path, token_for(3), "Content-Length: 5")
    status, _top, body = await _raw(front.url, head, *[b"a"] * 5, pause=0.2)
    assert status == 200 and json.loads(body)["body_len"] == 5


async def test_concurrent_requests_per_client_ip_are_capped(
    upstream: Any, make_gateway: Any
) -> None:
    front = make_gateway([upstream.url], PARLEY_MAX_INFLIGHT_PER_IP=3)
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as http:
        slow = [
            asyncio.create_task(http.get("/service/slow?s=1.5", headers=bearer(3)))
            for _ in range(3)
        ]
        await eventually(lambda: front.app.inflight.get("127.0.0.1") == 3, what="3 in flight")
        refused = await http.get("/service/api/one-more", headers=bearer(3))
        assert refused.status_code == 429
        assert refused.json() == {
            "detail": "Too many requests at once, slow down",
            "code": "rate_limited",
        }
        assert refused.headers["retry-after"] == "1"
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200, 200]
        # the count drops once each handler has returned
        await eventually(lambda: not front.app.inflight, what="nothing in flight")
        assert front.app.inflight == {}
        assert (await http.get("/service/api/one-more", headers=bearer(3))).status_code == 200


async def test_a_full_connection_pool_never_marks_the_upstream_down(
    upstream: Any, make_gateway: Any
) -> None:
    front = make_gateway([upstream.url], connect_timeout=0.3, max_upstream_connections=1)
    async with httpx.AsyncClient(base_url=front.url, trust_env=False, timeout=10) as http:
        before = upstream.paths().count("/service/slow")
        slow = asyncio.create_task(http.get("/service/slow?s=1.5", headers=bearer(3)))
        await eventually(
            lambda: upstream.paths().count("/service/slow") > before, what="the slow request"
        )
        busy = await http.get("/service/api/pool", headers=bearer(3))
        assert busy.status_code == 503
        assert busy.json()["code"] == "unavailable"
        assert front.app.pool.is_up(front.app.pool.upstreams[0])
        assert (await slow).status_code == 200
        assert (await http.get("/service/api/pool", headers=bearer(3))).status_code == 200


async def test_a_slow_websocket_handshake_is_not_a_dead_upstream(
    upstream: Any, make_gateway: Any
) -> None:
    """A busy server answering the upgrade after the connect timeout: accepted, not 502."""
    front = make_gateway([upstream.url], connect_timeout=0.3)
    url = f"{front.ws_url}/ws?slow=0.8&token={token_for(3)}"
    sockets = await asyncio.gather(*(websockets.connect(url, proxy=None) for _ in range(5)))
    try:
        for ws in sockets:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
        assert front.app.pool.is_up(front.app.pool.upstreams[0])
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_upstreams_all_marked_down_are_still_tried(
    make_upstream: Any, make_gateway: Any
) -> None:
    first, second = make_upstream(), make_upstream()
    front = make_gateway([first.url, second.url])
    for resting in front.app.pool.upstreams:
        front.app.pool.mark_failed(resting)
    async with httpx.AsyncClient(base_url=front.url, trust_env=False) as http:
        response = await http.get("/service/api/anyone", headers=bearer(3))
    assert response.status_code == 200
    for resting in front.app.pool.upstreams:
        front.app.pool.mark_failed(resting)
    async with websockets.connect(f"{front.ws_url}/ws?token={token_for(3)}", proxy=None) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
