"""Shared fixtures: a real server (uvicorn on a free port) per database, SQLite and PostgreSQL.

Each test makes its own users (random names), so tests share one database per backend
and never depend on each other's data.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn

from parley.config import Settings
from parley.server.app import create_app, uvicorn_config
from tests.waiting import EventLog, capture_events, eventually

CI = os.environ.get("CI") == "true"
PG_DSN = os.environ.get("PARLEY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PARLEY_TEST_REDIS", "redis://127.0.0.1:6379/0")


# The slower tier (docs/testing.md): whole directories of it, besides the modules that say
# `pytestmark = pytest.mark.live` themselves.
LIVE_DIRS = ("integration/ops/", "e2e/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(f"tests/{d}" in item.path.as_posix() for d in LIVE_DIRS):
            item.add_marker(pytest.mark.live)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(service: str, reason: str) -> None:
    """Skips (on a laptop) or fails (in CI) when a required service is missing."""
    if CI:
        pytest.fail(f"{service} is required in CI: {reason}")
    pytest.skip(f"{service} not available: {reason}")


async def kill_client(admin: Any, name: str) -> None:
    """`CLIENT KILL`s the one Redis connection named `name` (CLIENT LIST finds it): only the
    connection under test, never another process's."""
    found = [c for c in await admin.client_list() if c["name"] == name]
    assert len(found) == 1, f"{len(found)} Redis clients named {name}"
    await admin.execute_command("CLIENT", "KILL", "ID", found[0]["id"])


async def need_redis() -> str:
    """REDIS_URL once the test Redis answers a PING; else `need` skips or fails."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        need("Redis", str(exc))
    finally:
        await client.aclose()
    return REDIS_URL


async def postgres_available() -> str | None:
    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return str(exc)
    await conn.close()
    return None


@dataclass
class Running:
    """A live server: its base URL, settings and app state."""

    base: str
    settings: Settings
    app: object

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    @property
    def state(self):  # type: ignore[no-untyped-def]
        return self.app.state.parley  # type: ignore[attr-defined]


def test_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "PARLEY_DATA_DIR": data_dir,
        "PARLEY_RATE_SEND": "10000/second",
        "PARLEY_RATE_LOGIN": "1000/minute",
        "PARLEY_RATE_LOGIN_IP": "1000/minute",
        "PARLEY_WORKER_INTERVAL": 0.3,
        "PARLEY_SESSION_CHECK_INTERVAL": 0.5,
        "JWT_SECRET": "test-secret-" + uuid.uuid4().hex * 3,
        "LOG_LEVEL": "warning",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def run_sync(coro: Any) -> Any:
    """Runs a coroutine to completion from sync code, even inside pytest-asyncio's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _create_database(name: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    problem = run_sync(postgres_available())
    if problem:
        need("PostgreSQL", problem)
    name = "parley_test_" + uuid.uuid4().hex[:10]
    run_sync(_create_database(name))
    yield f"{PG_DSN.rsplit('/', 1)[0]}/{name}"
    run_sync(_drop_database(name))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None means the embedded default (SQLite in the data dir)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return None


async def start_server(settings: Settings) -> tuple[Running, uvicorn.Server, asyncio.Task[None]]:
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn_config(app, settings, port=port))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()  # the server failed to start: its error, at once
            pytest.fail("the server stopped before it started")
        return bool(server.started)

    await eventually(started, 10, what="the server to start")
    return Running(f"http://127.0.0.1:{port}", settings, app), server, task


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 15)


@pytest.fixture(scope="session")
async def live(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    """The server on each database in turn; every test using it runs on both."""
    data_dir = tmp_path_factory.mktemp("live")
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    running, server, task = await start_server(test_settings(data_dir, **overrides))
    yield running
    await stop_server(server, task)


@pytest.fixture
def published(live: Running) -> Iterator[EventLog]:
    """The events the live server's hub receives during the test (tests/waiting.py)."""
    with capture_events(live) as log:
        yield log


@pytest.fixture
async def client(live: Running) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP to the live server in-process (ASGI): the app itself, no socket or HTTP parser.
    Sockets, WebSockets and uvicorn's own behaviour go through `socket_client` or
    `live.base` / `live.ws_base` instead (docs/testing.md)."""
    transport = httpx.ASGITransport(app=live.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url=live.base, timeout=20, cookies=no_cookies()
    ) as http:
        yield http


@pytest.fixture
async def socket_client(live: Running) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP to the live server over a real socket (uvicorn's parsing, limits and headers)."""
    async with httpx.AsyncClient(base_url=live.base, timeout=20, cookies=no_cookies()) as http:
        yield http


def no_cookies() -> CookieJar:
    """A jar that keeps nothing: tests authenticate explicitly, never by a leftover cookie."""
    jar = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
    return jar
