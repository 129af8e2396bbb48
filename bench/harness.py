"""The bench's processes and data: start, watch (CPU, RSS), seed, tear down.

Only processes started here are stopped, by their PID; temporary data directories are
removed and a temporary PostgreSQL database is dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "bench-secret-" + "0123456789abcdef" * 3
PASSWORD = "bench password 1"
PG_ADMIN = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
UNLIMITED = "1000000/second"


def raise_nofile() -> int:
    """Raises this process's open-file limit to its hard limit (5,000 sockets and more)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raise_child_nofile() -> None:
    raise_nofile()


@dataclass
class Proc:
    """One process the bench started."""

    role: str
    popen: subprocess.Popen[bytes]
    url: str
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    def _family(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]  # granian runs workers
        except psutil.Error:
            return []

    def cpu(self) -> float:
        total = 0.0
        for proc in self._family():
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def rss_mib(self) -> float:
        total = 0.0
        for proc in self._family():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total / (1 << 20)


class Stack:
    """A set of processes started together, stopped together."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[Proc] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"parley-bench-{name}-"))
        self.pg_database: str | None = None

    def start(self, role: str, args: list[str], env: dict[str, str], url: str) -> Proc:
        log = (self.tmp / f"{role}.log").open("wb")
        popen = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_raise_child_nofile,
        )  # fmt: skip
        proc = Proc(role, popen, url)
        self.procs.append(proc)
        return proc

    def by_role(self, prefix: str) -> list[Proc]:
        return [p for p in self.procs if p.role.startswith(prefix)]

    def usage(self) -> dict[str, dict[str, float]]:
        return {
            p.role: {"cpu_s": round(p.cpu(), 2), "rss_mib": round(p.rss_mib(), 1)}
            for p in self.procs
        }

    def log_tail(self, role: str, lines: int = 20) -> str:
        path = self.tmp / f"{role}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )

    async def wait_healthy(self, proc: Proc, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.role} exited:\n{self.log_tail(proc.role)}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(proc.url + "/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{proc.role} did not answer /health:\n{self.log_tail(proc.role)}")

    async def stop(self) -> None:
        for group in ([p for p in self.procs if p.role == "gateway"], self.procs):
            for proc in group:
                if proc.popen.poll() is None:
                    proc.popen.send_signal(signal.SIGTERM)
            for proc in group:
                try:
                    await asyncio.to_thread(proc.popen.wait, 15)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait()
        if self.pg_database:
            await drop_database(self.pg_database)
        if os.environ.get("BENCH_KEEP_LOGS") == "1":  # the processes' logs, for a post-mortem
            print(f"logs kept in {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# PostgreSQL and Redis


async def postgres_available() -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def redis_available() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS)
    try:
        await client.ping()
    except Exception:
        return False
    finally:
        await client.aclose()
    return True


async def create_database() -> tuple[str, str]:
    import asyncpg

    name = "parley_bench_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name, f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


# Parley and the ceiling


def parley_env(data_dir: Path, database_url: str | None, redis: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_", "DB_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "JWT_SECRET": JWT_SECRET,
            "PARLEY_DATA_DIR": str(data_dir),
            "LOG_LEVEL": "warning",
            # the bench measures capacity, not the abuse limits
            "PARLEY_RATE_SEND": UNLIMITED,
            "PARLEY_RATE_TYPING": UNLIMITED,
            "PARLEY_RATE_USER": UNLIMITED,
            "PARLEY_RATE_PUBLIC": UNLIMITED,
            "PARLEY_RATE_FRAMES": ",".join(
                f"{kind}={UNLIMITED}"
                for kind in ("edit", "delete", "react", "read", "sync", "ping", "presence_query")
            ),
            "PARLEY_RATE_LOGIN": "1000000/minute",
            "PARLEY_MAX_SOCKETS_PER_USER": "100000",
            "PARLEY_MAX_INFLIGHT_PER_IP": "100000",
            "MAX_CONNECTIONS": "100000",
            # handshakes at once per process: the idle scenario opens 100 at a time, and a
            # refusal (503, retry later) would be counted as a socket that never opened
            "PARLEY_MAX_HANDSHAKES": "1000",
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis:
        env["REDIS_URL"] = REDIS
        env["PARLEY_REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}:"
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "parley.cli", *args]


async def start_parley(stack: Stack, *, servers: int, database_url: str | None) -> None:
    """`servers` server processes and a gateway in front of them (as `parley serve` does)."""
    data = stack.tmp / "data"
    env = parley_env(data, database_url, redis=servers > 1 or database_url is not None)
    ports = [free_port() for _ in range(servers)]
    for i, port in enumerate(ports):
        proc = stack.start(
            f"server-{i + 1}",
            _cli("server", "--port", str(port), "--data-dir", str(data)),
            env,
            f"http://127.0.0.1:{port}",
        )
        await stack.wait_healthy(proc)
    gateway_port = free_port()
    upstreams = [arg for port in ports for arg in ("--upstream", f"http://127.0.0.1:{port}")]
    proc = stack.start(
        "gateway",
        _cli("gateway", "--gateway-port", str(gateway_port), "--data-dir", str(data), *upstreams),
        env,
        f"http://127.0.0.1:{gateway_port}",
    )
    await stack.wait_healthy(proc)


async def start_ceiling(
    stack: Stack, ws: str = "websockets-sansio", server: str = "uvicorn"
) -> Proc:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "bench.ceiling",
        "--port",
        str(port),
        "--ws",
        ws,
        "--server",
        server,
    ]
    proc = stack.start("ceiling", args, dict(os.environ), f"http://127.0.0.1:{port}")
    await stack.wait_healthy(proc)
    return proc


# Seeding: users, sessions and chats written straight to the database (no argon2 per user)


@dataclass
class Seeded:
    user_ids: list[int]
    tokens: dict[int, str]
    chats: dict[str, list[int]]  # name -> chat ids
    members: dict[int, list[int]]  # chat id -> user ids
    login_username: str


async def seed(database_url: str, *, users: int, groups: dict[str, int], pairs: int) -> Seeded:
    """`users` users with a session each; groups {name: size} of the first users; `pairs`
    direct chats between consecutive users. Tokens are minted with the bench's JWT secret."""
    from sqlalchemy import insert

    from parley.security import hash_password, make_access_token, new_session_id
    from parley.server.db.models import Chat, Membership, Session, User
    from parley.server.db.session import make_engine, migrate

    engine = make_engine(database_url)
    try:
        lock = Path(database_url.split("///", 1)[1]).parent if "sqlite" in database_url else None
        await migrate(engine, lock)
        run = uuid.uuid4().hex[:6]
        password_hash = hash_password(PASSWORD)  # one argon2 hash, shared by every bench user
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            names = [f"b{run}{i}" for i in range(users)]
            rows = [
                {"username": n, "username_key": n, "email": f"{n}@example.com",
                 "email_key": f"{n}@example.com", "password_hash": password_hash,
                 "display_name": n, "bio": "", "is_admin": False, "created_at": now}
                for n in names
            ]  # fmt: skip
            result = await conn.execute(
                insert(User).returning(User.id, sort_by_parameter_order=True), rows
            )
            user_ids = [row[0] for row in result]
            sessions = [
                {"sid": new_session_id(), "user_id": uid, "created_at": now,
                 "expires_at": now + timedelta(days=1), "user_agent": "bench"}
                for uid in user_ids
            ]  # fmt: skip
            result = await conn.execute(
                insert(Session).returning(Session.sid, sort_by_parameter_order=True), sessions
            )
            session_ids = [row[0] for row in result]
            chats: dict[str, list[int]] = {}
            members: dict[int, list[int]] = {}
            chat_rows: list[dict[str, Any]] = []
            plans: list[tuple[str, list[int]]] = []
            for name, size in groups.items():
                chat_rows.append(_chat_row("group", name, user_ids[0], now))
                plans.append((name, user_ids[:size]))
            for i in range(pairs):
                a, b = user_ids[2 * i], user_ids[2 * i + 1]
                row = _chat_row("direct", "", a, now)
                row["direct_key"] = f"{min(a, b)}:{max(a, b)}"
                chat_rows.append(row)
                plans.append(("pairs", [a, b]))
            if chat_rows:
                result = await conn.execute(
                    insert(Chat).returning(Chat.id, sort_by_parameter_order=True), chat_rows
                )
                membership_rows = []
                for (name, uids), (chat_id,) in zip(plans, result, strict=True):
                    chats.setdefault(name, []).append(chat_id)
                    members[chat_id] = uids
                    membership_rows += [
                        {"chat_id": chat_id, "user_id": u, "joined_at": now, "last_read_seq": 0,
                         "role": "owner" if j == 0 else "member"}
                        for j, u in enumerate(uids)
                    ]  # fmt: skip
                for start in range(0, len(membership_rows), 5000):
                    await conn.execute(insert(Membership), membership_rows[start : start + 5000])
    finally:
        await engine.dispose()
    tokens = {
        uid: make_access_token(JWT_SECRET, user_id=uid, session_id=sid, ttl_seconds=24 * 3600)
        for uid, sid in zip(user_ids, session_ids, strict=True)
    }
    return Seeded(user_ids, tokens, chats, members, names[0])


def _chat_row(kind: str, title: str, owner: int, now: datetime) -> dict[str, Any]:
    return {
        "type": kind, "title": title, "description": "", "is_public": False,
        "created_by": owner, "created_at": now, "last_seq": 0, "last_activity_at": now,
    }  # fmt: skip


def sqlalchemy_url(stack: Stack, database_url: str | None) -> str:
    if database_url:
        return database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    (stack.tmp / "data").mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{stack.tmp / 'data' / 'parley.db'}"
