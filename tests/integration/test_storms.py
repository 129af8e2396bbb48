"""Bursts: many sockets syncing at once against an exhausted database pool, handshakes
past the admission bound, and a shutdown with many sockets open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.conftest import no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, connect, make_user, recv_type
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


async def hold_the_pool(engine: AsyncEngine) -> list[AsyncConnection]:
    """Checks out every connection the pool will give (until it times out): what a
    storm does when the pool is the bottleneck."""
    held: list[AsyncConnection] = []
    while True:
        try:
            held.append(await engine.connect())
        except PoolTimeout:
            return held


async def release(held: list[AsyncConnection]) -> None:
    for conn in held:
        await conn.close()


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    await eventually(condition, timeout)


async def server_with(tmp_path: Path, database_url: str | None, **overrides: object):  # type: ignore[no-untyped-def]
    if database_url:
        overrides["DATABASE_URL"] = database_url
    return await start_server(test_settings(tmp_path, **overrides))


async def test_a_storm_of_syncs_on_an_exhausted_pool_is_unavailable_never_internal(
    tmp_path: Path, database_url: str | None
) -> None:
    """A pool that times out is an overloaded backend: every sync of the storm is answered
    `unavailable` (retry), none `internal_error`; once the pool frees, the same sync works."""
    running, server, task = await server_with(
        tmp_path, database_url, PARLEY_DB_POOL_TIMEOUT=0.3, PARLEY_DB_POOL_SIZE=1
    )
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            people: list[Account] = [await make_user(http) for _ in range(8)]
            general = (await http.get("/service/api/chats", headers=people[0].headers)).json()[0]
        sockets = [await connect(running.ws_base, who) for who in people]
        await running.state.presence.settle()  # the online announcements are written
        frame = json.dumps({"type": "sync", "chats": {str(general["id"]): 0}})
        held = await hold_the_pool(running.state.read_engine)  # the pool syncs read through
        try:
            await asyncio.gather(*(ws.send(frame) for ws in sockets))
            errors = await asyncio.gather(*(recv_type(ws, "error", 10) for ws in sockets))
        finally:
            await release(held)
        assert [e["code"] for e in errors] == ["unavailable"] * len(sockets)
        assert {e["detail"] for e in errors} == {"Service temporarily unavailable"}
        await sockets[0].send(frame)  # the client retries: now it is served
        synced = await recv_type(sockets[0], "synced", 10)
        assert synced == {"type": "synced"}
        for ws in sockets:
            await ws.close()
    finally:
        await stop_server(server, task)


async def test_handshakes_past_the_admission_bound_get_503_with_retry_after(
    tmp_path: Path, database_url: str | None
) -> None:
    """With one handshake under way (waiting for the database), the next is refused at
    once, before the upgrade, with 503 `overloaded` and Retry-After; the first one opens
    when the database answers, and a handshake after it is admitted again."""
    running, server, task = await server_with(
        tmp_path, database_url, PARLEY_MAX_HANDSHAKES=1, PARLEY_DB_POOL_TIMEOUT=5
    )
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            first, second = await make_user(http), await make_user(http)
        slots = running.state.hub.slots
        await running.state.presence.settle()
        held = await hold_the_pool(running.state.read_engine)  # handshakes read through it
        try:
            opening = asyncio.create_task(connect(running.ws_base, first))
            await until(lambda: slots.opening == 1)
            with pytest.raises(websockets.InvalidStatus) as refused:
                await connect(running.ws_base, second)
        finally:
            await release(held)
        response = refused.value.response
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert json.loads(response.body) == {
            "detail": "Too many connections opening at once, retry shortly",
            "code": "overloaded",
        }
        ws = await opening  # admitted before: it opens (its hello) once the pool has room
        assert slots.opening == 0
        again = await connect(running.ws_base, second)  # admitted again: its hello
        await ws.close()
        await again.close()
    finally:
        await stop_server(server, task)


async def test_on_sqlite_writers_holding_their_pool_do_not_stop_handshakes_or_syncs(
    tmp_path: Path,
) -> None:
    """SQLite's read-only sessions have a pool of their own: with every connection of the
    writers' pool held (writers queued for the write lock hold theirs), a socket still
    opens and its sync is answered (before, the handshake waited for the shared pool and
    was refused when it timed out)."""
    running, server, task = await server_with(tmp_path, None, PARLEY_DB_POOL_TIMEOUT=0.5)
    try:
        state = running.state
        assert state.read_engine is not state.engine
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            me = await make_user(http)
            general = (await http.get("/service/api/chats", headers=me.headers)).json()[0]
        await state.presence.settle()
        held = await hold_the_pool(state.engine)
        try:
            assert held  # every connection the writers may use is taken
            ws = await connect(running.ws_base, me)
            await ws.send(json.dumps({"type": "sync", "chats": {str(general["id"]): 0}}))
            synced = await recv_type(ws, "synced", 10)
        finally:
            await release(held)
        assert synced == {"type": "synced"}
        await ws.close()
    finally:
        await stop_server(server, task)


async def test_a_sync_reads_only_the_chats_with_news(client: httpx.AsyncClient, live: Any) -> None:
    """After a restart most clients missed nothing: a `sync` of chats seen to their end is
    one statement (no message is read), and the chats with news are the only ones read."""
    from sqlalchemy import event

    from tests.factories import make_group, send

    me, peer = await make_user(client), await make_user(client)
    groups = [await make_group(client, peer, me) for _ in range(6)]
    for group in groups:
        await send(client, peer, group["id"], "seen before")
    seen = {str(group["id"]): 1 for group in groups}
    engines = {live.state.engine.sync_engine}
    if live.state.read_engine is not None:
        engines.add(live.state.read_engine.sync_engine)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.lower())

    ws = await connect(live.ws_base, me)
    try:
        for engine in engines:
            event.listen(engine, "before_cursor_execute", record)
        try:
            await ws.send(json.dumps({"type": "sync", "chats": seen}))
            synced = await recv_type(ws, "synced")
            quiet = list(statements)
            await send(client, peer, groups[2]["id"], "missed while away")
            await recv_type(ws, "message")  # live: the sync below brings it again
            statements.clear()
            await ws.send(json.dumps({"type": "sync", "chats": seen}))
            frames = []
            while (frame := json.loads(await ws.recv()))["type"] != "synced":
                frames.append(frame)
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", record)
    finally:
        await ws.close()
    assert synced == {"type": "synced"}  # nothing cut
    # (presence and the worker run their own statements meanwhile)
    assert not [s for s in quiet if "from messages" in s], quiet
    assert len([s for s in quiet if "chats.last_seq" in s]) == 1, quiet
    missed = [f["message"] for f in frames if f["type"] == "message"]
    assert [(m["chat_id"], m["content"]) for m in missed] == [
        (groups[2]["id"], "missed while away")
    ]
    reads_of_messages = [s for s in statements if "from messages" in s]
    assert 0 < len(reads_of_messages) <= 3, statements  # one chat's read, not six
