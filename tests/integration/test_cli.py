"""The CLI: migrate (also concurrently), users promote, and the server's start-up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from parley.server.db.session import make_engine, migrate
from tests.factories import make_user


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
