"""A client that stops reading its response holds no transaction: writers go on."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from sqlalchemy import func, insert, select

from parley.server.db.models import Chat, Membership
from tests.conftest import Running
from tests.factories import Account, make_user, send, unique
from tests.waiting import eventually, let_time_pass

CHATS = 300


async def _many_chats(live: Running, me: Account) -> None:
    """CHATS groups the user is in, inserted in bulk: a large GET /chats answer."""
    async with live.state.sessions() as session:
        ids = (
            await session.execute(
                insert(Chat).returning(Chat.id),
                [{"type": "group", "title": unique("g"), "is_public": False} for _ in range(CHATS)],
            )
        ).scalars()
        await session.execute(
            insert(Membership),
            [{"chat_id": chat_id, "user_id": me.id, "role": "member"} for chat_id in ids],
        )
        await session.commit()


def _scope(path: str, token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }


async def _stalled_get(live: Running, path: str, token: str) -> tuple[asyncio.Task[Any], Any]:
    """A GET whose client never reads the body: the app's `send` of the body never returns."""
    started, never = asyncio.Event(), asyncio.Event()
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send_(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        if message["type"] == "http.response.body":
            started.set()
            await never.wait()

    task = asyncio.create_task(live.app(_scope(path, token), receive, send_))  # type: ignore[operator]
    await asyncio.wait_for(started.wait(), 10)
    assert status == [200]
    return task, never


async def _idle_in_transaction(database_url: str) -> int:
    """Backends of this database idle inside a transaction for over a second."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        name = urlsplit(dsn).path.lstrip("/")
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                " AND state = 'idle in transaction' AND now() - state_change > interval '1 second'",
                name,
            )
        )
    finally:
        await conn.close()


async def test_an_unread_chat_list_does_not_hold_the_database(
    client: httpx.AsyncClient, live: Running
) -> None:
    me, other = await make_user(client), await make_user(client)
    await _many_chats(live, me)
    general = (await client.get("/service/api/chats", headers=other.headers)).json()[0]["id"]
    task, _ = await _stalled_get(live, "/service/api/chats", me.access_token)
    try:
        # On SQLite a transaction left open by the stalled answer would hold the write lock:
        # this write would wait for the busy timeout (30 s).
        async with asyncio.timeout(5):
            sent = await send(client, other, general, "still writing")
        assert sent["content"] == "still writing"
        if live.settings.database_url:
            await let_time_pass(1.2, "a transaction left open would be idle for over 1 s")
            assert await _idle_in_transaction(live.settings.database_url) == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_reads_take_no_write_lock(live: Running) -> None:
    """Two open read transactions and a write at once (SQLite: deferred BEGIN for reads)."""
    async with live.state.reads() as first, live.state.reads() as second:
        for reader in (first, second):  # each opens a transaction and keeps it open
            assert (await reader.execute(select(func.count(Chat.id)))).scalar_one() > 0
        async with asyncio.timeout(5), live.state.sessions() as writer:
            await writer.execute(
                insert(Chat).values(type="group", title=unique("w"), is_public=False)
            )
            await writer.commit()


async def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error(
    pg_url: str,
) -> None:
    """No pre-ping round trips: a connection PostgreSQL terminated while it sat in the pool
    is replaced at checkout, and the next request never sees the dead one."""
    from sqlalchemy import text

    from parley.server.db.session import make_engine

    engine = make_engine(pg_url.replace("postgresql://", "postgresql+asyncpg://", 1), pool_size=2)
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(text("SELECT pg_backend_pid()"))
        admin = await asyncpg.connect(pg_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first) is True

            async def gone() -> bool:  # its socket closed; the pool's connection hears it
                query = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1"
                return await admin.fetchval(query, first) == 0

            await eventually(gone, what=f"backend {first} gone")
        finally:
            await admin.close()
        async with engine.connect() as conn:
            second = await conn.scalar(text("SELECT pg_backend_pid()"))
            assert await conn.scalar(text("SELECT 1 + 1")) == 2
        assert second != first
    finally:
        await engine.dispose()
