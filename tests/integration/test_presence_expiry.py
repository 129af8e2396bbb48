"""A server process killed without closing (SIGKILL) does not leave its users online.

Three server processes on one PostgreSQL and one Redis: `doomed` runs as a real
subprocess, `b` and `c` in this process. With PARLEY_PRESENCE_PROCESS_TTL=2, the doomed
process's heartbeat key expires within two seconds of the kill; its users go offline on the
others (one presence frame to each watcher, from whichever process reaps it), while the
live processes keep each other's users online.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import (
    REDIS_URL,
    Running,
    free_port,
    need,
    no_cookies,
    start_server,
    stop_server,
    test_settings,
)
from tests.factories import Account, connect, make_direct, make_user, no_frame, recv_type
from tests.integration.test_backends import redis_problem
from tests.processes import stop_process, wait_http

pytestmark = pytest.mark.live  # starts Parley as processes (docs/testing.md)

TTL = 2.0  # PARLEY_PRESENCE_PROCESS_TTL for every process here (1 s let a live process
# starved of CPU by a parallel test run be taken for dead)
BOUND = TTL + TTL / 3 + 1.0  # expiry + one heartbeat of the others + the coalescing second


@dataclass
class Trio:
    doomed: subprocess.Popen[bytes]
    doomed_base: str
    b: Running
    c: Running
    prefix: str


@pytest.fixture
async def trio(tmp_path: Path, pg_url: str) -> AsyncIterator[Trio]:
    problem = await redis_problem()
    if problem:
        need("Redis", problem)
    shared: dict[str, str] = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": REDIS_URL,
        "PARLEY_REDIS_PREFIX": f"parley-test-{uuid.uuid4().hex[:8]}:",
        "JWT_SECRET": "presence-expiry-" + uuid.uuid4().hex * 2,
        "PARLEY_PRESENCE_PROCESS_TTL": str(TTL),
        "PARLEY_RATE_LOGIN": "1000/minute",
        "PARLEY_RATE_LOGIN_IP": "1000/minute",
    }
    b, server_b, task_b = await start_server(test_settings(tmp_path / "b", **shared))
    c, server_c, task_c = await start_server(test_settings(tmp_path / "c", **shared))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_"))}
    env.update(shared, PYTHONUNBUFFERED="1", LOG_LEVEL="warning")
    args = [sys.executable, "-m", "parley.cli", "server", "--port", str(port),
            "--data-dir", str(tmp_path / "doomed")]  # fmt: skip
    doomed = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_http, f"{base}/health", doomed)
        yield Trio(doomed, base, b, c, shared["PARLEY_REDIS_PREFIX"])
    finally:
        await asyncio.to_thread(stop_process, doomed)
        await stop_server(server_b, task_b)
        await stop_server(server_c, task_c)
        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(match=shared["PARLEY_REDIS_PREFIX"] + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def _online(http: httpx.AsyncClient, viewer: Account, user: Account) -> bool:
    response = await http.get(f"/service/api/users/{user.id}", headers=viewer.headers)
    assert response.status_code == 200, response.text
    return bool(response.json()["online"])


async def test_a_killed_process_users_go_offline_on_the_others(trio: Trio) -> None:
    async with (
        httpx.AsyncClient(base_url=trio.b.base, cookies=no_cookies(), timeout=20) as http_b,
        httpx.AsyncClient(base_url=trio.c.base, cookies=no_cookies(), timeout=20) as http_c,
    ):
        x, y, z = await make_user(http_b), await make_user(http_b), await make_user(http_b)
        await make_direct(http_b, x, y)
        await make_direct(http_b, z, y)
        ws_y = await connect(trio.b.ws_base, y)  # y watches x and z from b
        ws_z = await connect(trio.c.ws_base, z)
        ws_x = await connect(trio.doomed_base.replace("http://", "ws://"), x)
        try:
            came = [await recv_type(ws_y, "presence") for _ in range(2)]
            assert {(f["user_id"], f["status"]) for f in came} == {
                (x.id, "online"),
                (z.id, "online"),
            }
            # Several TTLs of heartbeats: no live process is taken for dead.
            await no_frame(ws_y, "presence", wait=2 * TTL)
            for http in (http_b, http_c):
                assert await _online(http, y, x) and await _online(http, y, z)
            assert await _online(http_b, x, y) and await _online(http_c, y, y)

            trio.doomed.kill()  # SIGKILL: no close, no offline event, its Redis keys stay
            trio.doomed.wait()
            gone = await recv_type(ws_y, "presence", timeout=BOUND + 2.0)
            assert (gone["user_id"], gone["status"]) == (x.id, "offline")
            assert gone["last_seen_at"] is not None
            await no_frame(ws_y, "presence", wait=2 * TTL)  # announced once, not per process
            for http in (http_b, http_c):
                assert not await _online(http, y, x)  # gone everywhere
                assert await _online(http, y, z) and await _online(http, x, y)  # the live stay
            redis = Redis.from_url(REDIS_URL)
            try:
                left = [key async for key in redis.scan_iter(match=trio.prefix + "presence:*")]
            finally:
                await redis.aclose()
            assert len(left) == 2  # b's and c's sets: the dead process's was deleted
        finally:
            for ws in (ws_y, ws_z):
                await ws.close()
            ws_x.transport.abort()
