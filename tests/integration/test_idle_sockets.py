"""What an open socket costs the server: no writer task until its client falls behind, a
handshake from the process's caches, no database write for a user already online
(SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from websockets.exceptions import ConnectionClosed

from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import connect, make_direct, make_group, make_user, recv_type, send
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@contextmanager
def statements(running: Running) -> Iterator[list[str]]:
    """The SQL the server runs meanwhile (lower case)."""
    seen: list[str] = []
    engine = running.state.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.lower())

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def own_connection(running: Running, user_id: int) -> Any:
    (conn,) = running.state.hub.connections_of(user_id)
    return conn


async def test_a_socket_that_keeps_up_has_no_writer_task(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b = await make_user(client), await make_user(client)
    group = await make_group(client, a, b)
    ws = await connect(live.ws_base, b)
    try:
        conn = own_connection(live, b.id)
        for i in range(20):
            await send(client, a, group["id"], f"m{i}")
        for i in range(20):
            assert (await recv_type(ws, "message"))["message"]["content"] == f"m{i}"
        await ws.send(json.dumps({"type": "ping"}))
        await recv_type(ws, "pong")
        assert conn.writer is None and conn._queue is None  # written directly, every one
    finally:
        await ws.close()


async def test_the_writer_exists_only_for_the_client_that_falls_behind(tmp_path: Path) -> None:
    running, server, task = await start_server(test_settings(tmp_path, PARLEY_WS_SEND_QUEUE=4))
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            slow, talker, reader = [await make_user(http) for _ in range(3)]
            group = await make_group(http, talker, slow, reader)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(
                sock, ("127.0.0.1", int(running.base.rsplit(":", 1)[1]))
            )
            stalled = await connect(running.ws_base, slow, sock=sock, max_queue=1, compression=None)
            fast = await connect(running.ws_base, reader)
            slow_conn, fast_conn = (
                own_connection(running, slow.id),
                own_connection(running, reader.id),
            )
            assert slow_conn.writer is None and fast_conn.writer is None
            got: list[str] = []

            async def read_all() -> None:
                while True:
                    frame = json.loads(await fast.recv())
                    if frame["type"] == "message":
                        got.append(frame["message"]["content"])

            reading = asyncio.create_task(read_all())
            big = "😀" * 3990  # 16 KB per frame
            sent = 0
            while sent < 300 and not slow_conn.closing:
                await send(http, talker, group["id"], f"{sent} {big}")
                sent += 1
            assert slow_conn.closing and slow_conn.writer is not None
            await eventually(lambda: len(got) >= sent, 15, what="every message read")
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            assert fast_conn.writer is None and fast_conn._queue is None
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await stalled.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            await fast.close()
    finally:
        await stop_server(server, task)


async def test_a_second_socket_of_an_online_user_writes_nothing(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b = await make_user(client), await make_user(client)
    await make_direct(client, a, b)
    watcher = await connect(live.ws_base, b)
    first = await connect(live.ws_base, a)
    try:
        assert (await recv_type(watcher, "presence"))["status"] == "online"
        await live.state.presence.settle()
        with statements(live) as seen:
            second = await connect(live.ws_base, a)
            await second.send(json.dumps({"type": "ping"}))
            await recv_type(second, "pong")
            await live.state.presence.settle()
        written = [s for s in seen if s.startswith(("update", "insert", "delete"))]
        assert not [s for s in written if "users" in s or "last_seen_at" in s]
        # Memberships and blocks came from the process's caches (filled by the first).
        mine = ("memberships.user_id = ", "blocks.blocker_id = ")  # a's, not the sweeps'
        assert not [s for s in seen if any(m in s for m in mine)]
        await second.close()
    finally:
        await first.close()
        await watcher.close()


async def test_presence_and_last_seen_stay_right_over_reconnects(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b = await make_user(client), await make_user(client)
    await make_direct(client, a, b)
    watcher = await connect(live.ws_base, b)
    try:
        for _ in range(2):
            ws = await connect(live.ws_base, a)
            online = await recv_type(watcher, "presence", timeout=5)
            assert online["user_id"] == a.id and online["status"] == "online"
            await ws.close()
            offline = await recv_type(watcher, "presence", timeout=5)
            assert offline["user_id"] == a.id and offline["status"] == "offline"
            await live.state.presence.settle()
            user = (await client.get(f"/service/api/users/{a.id}", headers=b.headers)).json()
            assert user["online"] is False
            assert _same_time(user["last_seen_at"], offline["last_seen_at"])
        ws = await connect(live.ws_base, a)
        online = await recv_type(watcher, "presence", timeout=5)
        assert online["status"] == "online"
        await live.state.presence.settle()
        await watcher.send(json.dumps({"type": "presence_query", "user_ids": [a.id]}))
        answer = await recv_type(watcher, "presence")
        assert answer["status"] == "online"
        assert _same_time(answer["last_seen_at"], online["last_seen_at"])
        await ws.close()
    finally:
        await watcher.close()


def _same_time(a: str, b: str) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(a).timestamp() == pytest.approx(
        datetime.fromisoformat(b).timestamp(), abs=1e-3
    )


async def test_a_new_socket_sees_chats_joined_after_the_cache_was_filled(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b = await make_user(client), await make_user(client)
    first = await connect(live.ws_base, a)  # fills the process's cache of a's chats
    await first.close()
    group = await make_group(client, b, a)  # a joins: the cache forgets a's chats
    again = await connect(live.ws_base, a)
    try:
        await send(client, b, group["id"], "to the new group")
        got = await recv_type(again, "message")
        assert got["message"]["content"] == "to the new group"
        assert group["id"] in own_connection(live, a.id).chats
    finally:
        await again.close()
