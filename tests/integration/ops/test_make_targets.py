"""`make api-test`, `make health`, `make stats`, `make db-backup` against a running Parley."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tarfile
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PG_DSN, postgres_available
from tests.integration.ops.conftest import ROOT, Proc


def make(
    target: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-s", target, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_api_test_exercises_every_endpoint(serve: Proc) -> None:
    done = make("api-test", f"BASE_URL={serve.urls['gateway']}")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "0 failed" in out and "FAIL" not in out, out
    for call in (
        "POST   /service/api/register",
        "PUT    /service/api/profile/avatar",
        "POST   /service/api/chats/",
        "POST   /service/api/messages/",
        "GET    /service/api/search",
        "POST   /service/api/chats/",
        "DELETE /service/api/block/",
        "POST   /api/v1/messages",
        "POST   /service/api/password",
        "ok    WS     /ws  hello, ping, typing, send+ack, delivery, sync",
    ):
        assert call in out, (call, out)
    summary = out.strip().splitlines()[-1]
    assert int(summary.split()[0]) >= 60, out  # calls that passed


def test_api_test_reports_failures(serve: Proc) -> None:
    """Pointed at something that is not Parley, it fails loudly (exit 1), not silently."""
    done = make("api-test", f"BASE_URL={serve.urls['gateway']}/nothing-here")
    assert done.returncode != 0
    assert "FAIL" in done.stdout


def test_health_and_stats_print_the_instance(serve: Proc) -> None:
    urls = (f"BASE_URL={serve.urls['gateway']}", f"SERVER_URL={serve.urls['server']}")
    health = make("health", *urls)
    assert health.returncode == 0, health.stdout + health.stderr
    lines = health.stdout.splitlines()
    assert lines[0].startswith("gateway") and "ok" in lines[0] and "HTTP 200" in lines[0]
    assert any(line.strip().startswith("upstreams") and "upstream-1=ok" in line for line in lines)
    assert any(
        line.strip().startswith("database") and line.rstrip().endswith("ok") for line in lines
    )

    stats = make("stats", *urls)
    assert stats.returncode == 0, stats.stdout + stats.stderr
    assert "users" in stats.stdout and "messages stored since start" in stats.stdout
    users = next(line for line in stats.stdout.splitlines() if line.strip().startswith("users"))
    assert int(users.split()[-1]) >= 0


def test_health_says_down_when_nothing_answers() -> None:
    done = make("health", "BASE_URL=http://127.0.0.1:9", "SERVER_URL=http://127.0.0.1:9")
    assert done.returncode != 0
    assert "DOWN" in done.stdout


def test_db_backup_sqlite_is_a_consistent_copy(serve: Proc, tmp_path: Path) -> None:
    data = Path(serve.log).parent / "data"
    (data / "files").mkdir(exist_ok=True)
    (data / "files" / "probe.bin").write_bytes(b"file store")
    done = make("db-backup", f"BACKUP_DIR={tmp_path}", env={"PARLEY_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stdout + done.stderr
    (dump,) = tmp_path.glob("parley-*.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [dump.name, next(tmp_path.glob("files-*.tar.gz")).name]
    )  # one self-contained database file (no -wal/-shm beside it), one archive
    with contextlib.closing(sqlite3.connect(dump)) as db:
        users = db.execute("SELECT count(*) FROM users").fetchone()[0]
    assert users >= 3  # the API test's users
    with tarfile.open(next(tmp_path.glob("files-*.tar.gz"))) as tar:
        probe = tar.extractfile("files/probe.bin")
        assert probe is not None and probe.read() == b"file store"


async def test_db_backup_postgresql_restores(tmp_path: Path) -> None:
    if problem := await postgres_available():
        pytest.skip(f"PostgreSQL: {problem}")
    name = f"parley_ops_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_DSN.rsplit("/", 1)[0] + "/" + name
        env = {**os.environ, "DATABASE_URL": url, "PARLEY_DATA_DIR": str(tmp_path / "data")}
        migrate = subprocess.run(
            ["make", "-s", "db-migrate"], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE backup_probe (note text)")
        await conn.execute("INSERT INTO backup_probe VALUES ('kept')")
        await conn.close()
        done = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "deploy/scripts/db.py", "backup", str(tmp_path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        dump = next(tmp_path.glob("parley-*.dump"))
        restored = name + "_r"
        await admin.execute(f'CREATE DATABASE "{restored}"')
        try:
            target = PG_DSN.rsplit("/", 1)[0] + "/" + restored
            subprocess.run(["pg_restore", "--no-owner", "-d", target, str(dump)], check=True)
            conn = await asyncpg.connect(target)
            note = await conn.fetchval("SELECT note FROM backup_probe")
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
            await conn.close()
            assert note == "kept" and revision
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.parametrize("target", ["build", "up", "up-build", "down", "logs", "logs-app"])
def test_docker_targets_say_docker_is_needed(target: str, tmp_path: Path) -> None:
    """Without a Docker engine (`docker info` fails) the target says so in one line."""
    stub = tmp_path / "docker"
    stub.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    stub.chmod(0o755)
    done = make(target, env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert done.returncode != 0
    said = [line for line in done.stdout.splitlines() if line.strip()]
    assert said == [f"make {target}: needs Docker (docker info failed: install Docker and start "
                    "its engine)"], done.stdout  # fmt: skip


def test_status_without_docker_checks_the_local_instance(serve: Proc, tmp_path: Path) -> None:
    stub = tmp_path / "docker"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    done = make("status", f"BASE_URL={serve.urls['gateway']}",
                f"SERVER_URL={serve.urls['server']}",
                env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no compose stack running" in done.stdout and "HTTP 200" in done.stdout


def test_db_shell_opens_the_configured_database(serve: Proc) -> None:
    if shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 is not installed (db-shell says so itself)")
    data = Path(serve.log).parent / "data"
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "db-shell"], cwd=ROOT, timeout=60, check=False,
        input="SELECT 'tables:' || count(*) FROM sqlite_master WHERE name = 'users';\n",
        capture_output=True, text=True, env={**os.environ, "PARLEY_DATA_DIR": str(data)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "tables:1" in done.stdout


async def test_db_shell_on_postgresql() -> None:
    if problem := await postgres_available():
        pytest.skip(f"PostgreSQL: {problem}")
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed (db-shell says so itself)")
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "db-shell"], cwd=ROOT, timeout=60, check=False,
        input="SELECT 'answer:' || 6 * 7;\n", capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": PG_DSN},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "answer:42" in done.stdout
