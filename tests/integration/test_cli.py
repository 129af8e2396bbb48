"""The CLI: migrate (also concurrently), users promote, and the server's start-up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from parley.server.db.session import make_engine, migrate
from tests.factories import make_direct, make_user
from tests.waiting import eventually

pytestmark = pytest.mark.live  # starts Parley as processes (docs/testing.md)


def parley(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_migrations_are_safe_when_several_processes_start_at_once(
    database_url: str | None, tmp_path: Path
) -> None:
    """Three engines migrate one fresh database at once; all succeed, the schema is whole."""
    if database_url is None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
        lock_dir: Path | None = tmp_path
    else:
        from tests.conftest import PG_DSN, _create_database, _drop_database

        name = "parley_race_" + os.urandom(4).hex()
        await _create_database(name)
        url = f"{PG_DSN.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://")
        lock_dir = None
    engines = [make_engine(url) for _ in range(3)]
    try:
        if lock_dir is None:
            await asyncio.gather(*(migrate(e) for e in engines))
        else:
            for engine in engines:  # the file lock serializes; in one process, in turn
                await migrate(engine, lock_dir)
        async with engines[0].connect() as conn:
            from sqlalchemy import text

            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert len(version) == 1
    finally:
        for engine in engines:
            await engine.dispose()
        if database_url is not None:
            await _drop_database(name)


def test_migrate_then_promote_a_user(tmp_path: Path) -> None:
    data = str(tmp_path)
    first = parley("migrate", "--data-dir", data)
    assert first.returncode == 0 and "up to date" in first.stdout
    missing = parley("users", "promote", "nobody", "--data-dir", data)
    assert missing.returncode == 1 and "No user named 'nobody'" in missing.stderr


async def test_promote_makes_an_admin(tmp_path: Path) -> None:
    from tests.conftest import no_cookies, start_server, stop_server, test_settings

    settings = test_settings(tmp_path)
    running, server, task = await start_server(settings)
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            assert (
                await http.get("/service/api/admin/bans", headers=me.headers)
            ).status_code == 403
            result = await asyncio.to_thread(
                parley,
                "users",
                "promote",
                me.username.upper(),
                "--data-dir",
                str(tmp_path),
                env={"JWT_SECRET": settings.jwt_key()},
            )
            assert result.returncode == 0, result.stderr
            profile = (await http.get("/service/api/profile", headers=me.headers)).json()
            assert profile["is_admin"] is True
            bans = await http.get("/service/api/admin/bans", headers=me.headers)
            assert bans.status_code == 200 and bans.json() == []
    finally:
        await stop_server(server, task)


def _serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_", "DB_"))}
    for key in ("DATABASE_URL", "JWT_SECRET"):
        env.pop(key, None)
    return {**env, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "warning", **extra}


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    result = parley("serve", "--workers", "2", "--data-dir", str(tmp_path), env=_serve_env())
    assert result.returncode == 2
    assert "--workers 2 needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)" in result.stderr


def test_worker_count_defaults(tmp_path: Path) -> None:
    from parley.config import Settings
    from parley.serve import worker_count

    sqlite = Settings(PARLEY_DATA_DIR=tmp_path, REDIS_URL="redis://x")  # type: ignore[call-arg]
    assert worker_count(sqlite) == (1, None)
    shared = Settings(DATABASE_URL="postgresql://h/db", REDIS_URL="redis://x")  # type: ignore[call-arg]
    assert worker_count(shared) == (os.cpu_count() or 1, None)
    no_redis = Settings(DATABASE_URL="postgresql://h/db")  # type: ignore[call-arg]
    assert worker_count(no_redis) == (1, None)
    three = Settings(DATABASE_URL="postgresql://h/db", REDIS_URL="redis://x", PARLEY_WORKERS=3)  # type: ignore[call-arg]
    assert worker_count(three) == (3, None)


async def test_serve_two_workers_share_messages_and_stop_together(
    pg_url: str, tmp_path: Path
) -> None:
    """`parley serve --workers 2` on PostgreSQL + Redis: two servers behind one gateway; a
    message sent on a socket of one server reaches a socket held by the other; SIGINT
    (Ctrl-C) stops the three processes."""
    import json
    import re
    import signal
    import socket

    import websockets

    from tests.conftest import REDIS_URL, free_port
    from tests.integration.test_backends import redis_problem

    problem = await redis_problem()
    if problem:
        from tests.conftest import need

        need("Redis", problem)
    gateway_port = free_port()
    log = tmp_path / "serve.log"
    env = _serve_env(
        DATABASE_URL=pg_url,
        REDIS_URL=REDIS_URL,
        PARLEY_REDIS_PREFIX=f"test-{os.urandom(6).hex()}:",
        PARLEY_RATE_PUBLIC="1000/second",
    )
    args = [sys.executable, "-m", "parley.cli", "serve", "--workers", "2",
            "--port", str(free_port()), "--gateway-port", str(gateway_port),
            "--data-dir", str(tmp_path / "data")]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{gateway_port}"
    try:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as http:

            async def healthy() -> bool:
                if process.poll() is not None:  # not an assert: that would mean "not yet"
                    pytest.fail(log.read_text())
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(healthy, 60, interval=0.1, what="/health to answer 200")
            health = (await http.get("/health")).json()
            assert [u["status"] for u in health["checks"]["upstreams"]] == ["ok", "ok"]
            alice = await make_user(http)
            bob = await make_user(http)
            chat_id = (await make_direct(http, alice, bob))["id"]
        output = log.read_text()
        ports = [int(p) for p in re.findall(r"server \d of 2 on http://127\.0\.0\.1:(\d+)", output)]
        assert len(ports) == 2 and ports[0] != ports[1], output
        sender_url = f"ws://127.0.0.1:{ports[0]}/service/ws"
        receiver_url = f"ws://127.0.0.1:{ports[1]}/service/ws"
        async with (
            websockets.connect(receiver_url, additional_headers=bob.headers, proxy=None) as rx,
            websockets.connect(sender_url, additional_headers=alice.headers, proxy=None) as tx,
        ):
            for ws in (rx, tx):  # each socket's hello (presence frames may come around it)
                async with asyncio.timeout(10):
                    while json.loads(await ws.recv())["type"] != "hello":
                        pass
            send = {"type": "send", "chat_id": chat_id, "content": "across", "client_id": "w-1"}
            await tx.send(json.dumps(send))
            async with asyncio.timeout(10):
                while True:
                    frame = json.loads(await rx.recv())
                    if frame["type"] == "message":
                        break
        assert frame["message"]["content"] == "across"
        assert frame["message"]["sender"]["id"] == alice.id
        process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert f"Parley is running at {base}" in output and "Stopped." in output
    for port in (*ports, gateway_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_serve_two_gateways_share_the_port_and_stop_together(tmp_path: Path) -> None:
    """`parley serve --gateways 2` (SQLite): two gateway processes listen on the one port
    (SO_REUSEPORT), the kernel spreads the sockets over both, a message crosses from a
    socket of one to a socket of the other, and Ctrl-C stops all three processes."""
    import json
    import signal
    import socket

    import psutil
    import websockets

    from tests.conftest import free_port

    gateway_port = free_port()
    log = tmp_path / "serve.log"
    env = _serve_env(PARLEY_RATE_PUBLIC="1000/second", PARLEY_RATE_LOGIN_IP="1000/second")
    args = [sys.executable, "-m", "parley.cli", "serve", "--gateways", "2",
            "--port", str(free_port()), "--gateway-port", str(gateway_port),
            "--data-dir", str(tmp_path / "data")]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{gateway_port}"
    ws_url = f"ws://127.0.0.1:{gateway_port}/service/ws"
    try:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as http:

            async def healthy() -> bool:
                if process.poll() is not None:
                    pytest.fail(log.read_text())
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(healthy, 60, interval=0.1, what="/health to answer 200")
            alice = await make_user(http)
            bob = await make_user(http)
            chat_id = (await make_direct(http, alice, bob))["id"]
        gateways = [
            child
            for child in psutil.Process(process.pid).children()
            if "gateway" in child.cmdline()
        ]
        assert len(gateways) == 2, [c.cmdline() for c in psutil.Process(process.pid).children()]

        def held(gateway: psutil.Process) -> int:
            return sum(
                1
                for conn in gateway.net_connections("tcp")
                if conn.laddr and conn.laddr.port == gateway_port and conn.status == "ESTABLISHED"
            )

        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(
                    websockets.connect(ws_url, additional_headers=user.headers, proxy=None)
                )
                for user in [bob] * 10 + [alice] * 10
            ]
            for ws in sockets:
                async with asyncio.timeout(10):
                    while json.loads(await ws.recv())["type"] != "hello":
                        pass
            counts = [held(gateway) for gateway in gateways]
            # 20 sockets: each gateway holds some (all on one: a chance of 2 in a million)
            assert sum(counts) == 20 and min(counts) > 0, counts
            send = {"type": "send", "chat_id": chat_id, "content": "across", "client_id": "g-1"}
            await sockets[-1].send(json.dumps(send))
            for rx in sockets[:10]:  # every socket of bob's, on either gateway
                async with asyncio.timeout(10):
                    while (frame := json.loads(await rx.recv()))["type"] != "message":
                        pass
                assert frame["message"]["content"] == "across"
        process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert f"Parley is running at {base}" in output and "Stopped." in output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", gateway_port)) != 0
