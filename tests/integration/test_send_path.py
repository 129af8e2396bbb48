"""The send path: group commit under concurrent senders, failed batches, overload, sync.

Every test runs on SQLite and PostgreSQL (real databases). Batches are made for real:
many sockets sending at once while a write is in flight.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, func, insert, select, update

from parley.clock import Clock
from parley.server.db.models import Chat, Message
from parley.server.db.session import make_engine, make_sessionmaker
from parley.server.messages.drafts import Draft
from parley.server.messages.writer import Writer
from parley.server.realtime.broker import InProcessBroker
from tests.conftest import Running, no_cookies, start_server, stop_server, test_settings
from tests.factories import Account, connect, make_direct, make_group, make_user, recv_type
from tests.waiting import eventually, let_time_pass

SENDERS = 6
EACH = 25


async def _send_all(ws: Any, chat_id: int, prefix: str, count: int) -> dict[str, dict[str, Any]]:
    """Sends `count` messages without waiting, then collects the acknowledgements."""
    for n in range(count):
        await ws.send(
            json.dumps(
                {
                    "type": "send",
                    "chat_id": chat_id,
                    "content": f"{prefix} {n}",
                    "client_id": f"{prefix}-{n}",
                }
            )
        )
    acks: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(30):
        while len(acks) < count:
            frame = json.loads(await ws.recv())
            if frame["type"] == "error":
                raise AssertionError(frame)
            if frame["type"] == "message" and (frame["message"]["client_id"] or "").startswith(
                prefix + "-"
            ):
                acks[frame["message"]["client_id"]] = frame["message"]
    return acks


async def test_concurrent_senders_are_batched_gap_free_and_exactly_once(
    client: httpx.AsyncClient, live: Running
) -> None:
    users = [await make_user(client) for _ in range(SENDERS)]
    chat = await make_group(client, users[0], *users[1:])
    sockets = [await connect(live.ws_base, u) for u in users]
    writer = live.state.writer
    batches_before, stored_before = writer.batches, writer.stored
    try:
        results = await asyncio.gather(
            *(_send_all(ws, chat["id"], f"s{i}", EACH) for i, ws in enumerate(sockets))
        )
        batches = writer.batches - batches_before
        stored = writer.stored - stored_before
        assert stored == SENDERS * EACH
        assert batches < stored / 2, f"{stored} messages in {batches} transactions: not batched"
        # Resends of every client_id: the stored messages come back, nothing is duplicated.
        again = await asyncio.gather(
            *(_send_all(ws, chat["id"], f"s{i}", EACH) for i, ws in enumerate(sockets))
        )
        for first, second in zip(results, again, strict=True):
            assert {k: m["id"] for k, m in first.items()} == {k: m["id"] for k, m in second.items()}
    finally:
        for ws in sockets:
            await ws.close()
    history = (
        await client.get(
            f"/service/api/chats/{chat['id']}/messages?limit=500", headers=users[0].headers
        )
    ).json()
    assert [m["seq"] for m in history] == list(range(1, SENDERS * EACH + 1))
    assert Counter(m["client_id"] for m in history).most_common(1)[0][1] == 1
    for i, acks in enumerate(results):
        # each sender's own messages keep their sending order
        seqs = [acks[f"s{i}-{n}"]["seq"] for n in range(EACH)]
        assert seqs == sorted(seqs)
    chats = (await client.get("/service/api/chats", headers=users[1].headers)).json()
    mine = next(c for c in chats if c["id"] == chat["id"])
    assert mine["last_seq"] == SENDERS * EACH


class _Witness(InProcessBroker):
    """A broker that checks, when a message is published, that another connection sees it."""

    def __init__(self, live: Running) -> None:
        super().__init__()
        self.live = live
        self.seen: list[bool] = []

    async def publish(self, event: Any) -> None:
        message_id = json.loads(event.frame)["message"]["id"]
        async with self.live.state.engine.connect() as other:
            found = await other.scalar(select(func.count()).where(Message.id == message_id))
        self.seen.append(found == 1)


async def test_acknowledgement_never_precedes_the_commit(
    client: httpx.AsyncClient, live: Running
) -> None:
    owner, member = await make_user(client), await make_user(client)
    chat = await make_group(client, owner, member)
    broker = _Witness(live)
    writer = Writer(live.state.sessions, broker, Clock())
    drafts = [Draft(owner.id if n % 2 else member.id, chat["id"], f"w{n}") for n in range(20)]
    committed: list[bool] = []

    async def on_answer(draft: Draft) -> None:
        message, created = await draft.future
        async with live.state.engine.connect() as other:
            count = await other.scalar(select(func.count()).where(Message.id == message.id))
        committed.append(created and count == 1)

    try:
        waiters = [asyncio.create_task(on_answer(d)) for d in drafts]
        for d in drafts:
            await writer.submit(d)
        await asyncio.wait_for(asyncio.gather(*waiters), 20)
    finally:
        await writer.close()
    assert committed == [True] * 20 and broker.seen == [True] * 20
    assert writer.batches < 20


async def _chat_row_locked_then_killed(pg_url: str, chat_id: int, go: asyncio.Event) -> None:
    """Locks the chat's row so the writer's batch waits on it, then terminates every backend
    that waits there (for 3 s: each batch in turn), then lets go."""
    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    locker = await asyncpg.connect(dsn)
    killer = await asyncpg.connect(dsn)
    killed = 0
    try:
        async with locker.transaction():
            await locker.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat_id)
            go.set()
            deadline = asyncio.get_running_loop().time() + 3
            while asyncio.get_running_loop().time() < deadline:
                for row in await killer.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%UPDATE chats%' AND datname = current_database()"
                ):
                    await let_time_pass(0.1, "more sends queue behind the blocked batch")
                    await killer.execute("SELECT pg_terminate_backend($1)", row["pid"])
                    killed += 1
                await let_time_pass(0.02, "a fixed 3 s window: look for waiters again")
    finally:
        await locker.close()
        await killer.close()
    assert killed >= 1


def _impatient_sqlite(path: Path) -> Any:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _short_wait(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=300")
        cursor.close()

    return engine


async def _sqlite_locked(path: Path, go: asyncio.Event, seconds: float) -> None:
    """Holds SQLite's write lock from another connection while the writer's batch waits."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        # in a thread: a write of the server (same event loop) in flight can finish meanwhile
        await asyncio.to_thread(db.execute, "BEGIN IMMEDIATE")
        go.set()
        await let_time_pass(seconds, "the database is locked this long")
        db.execute("ROLLBACK")
    finally:
        db.close()


async def test_failed_batch_acknowledges_nothing_and_senders_get_unavailable(
    tmp_path: Path, database_url: str | None
) -> None:
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    running, server, task = await start_server(test_settings(tmp_path, **overrides))
    state = running.state
    if database_url is None:  # SQLite: a short busy timeout, so a held lock fails the batch
        await state.engine.dispose()
        state.engine = _impatient_sqlite(tmp_path / "parley.db")
        state.sessions = make_sessionmaker(state.engine)
    try:
        async with httpx.AsyncClient(base_url=running.base, cookies=no_cookies()) as http:
            users = [await make_user(http) for _ in range(4)]
            chat = await make_group(http, users[0], *users[1:])
            sockets = [await connect(running.ws_base, u) for u in users]
            for i, ws in enumerate(sockets):  # warm the caches: only the writer meets the fault
                await _send_all(ws, chat["id"], f"warm{i}", 1)
            before = (await http.get("/service/api/chats", headers=users[0].headers)).json()
            last_seq = next(c for c in before if c["id"] == chat["id"])["last_seq"]
            go = asyncio.Event()
            if database_url is None:
                trouble = asyncio.create_task(_sqlite_locked(tmp_path / "parley.db", go, 3.0))
            else:
                trouble = asyncio.create_task(
                    _chat_row_locked_then_killed(database_url, chat["id"], go)
                )
            await go.wait()
            for i, ws in enumerate(sockets):
                for n in range(3):
                    await ws.send(
                        json.dumps(
                            {
                                "type": "send",
                                "chat_id": chat["id"],
                                "content": f"lost {i} {n}",
                                "client_id": f"lost-{i}-{n}",
                            }
                        )
                    )
            for i, ws in enumerate(sockets):
                refs = set()
                async with asyncio.timeout(20):
                    while len(refs) < 3:
                        frame = json.loads(await ws.recv())
                        if frame["type"] == "message":
                            assert not (frame["message"]["client_id"] or "").startswith("lost"), (
                                f"acknowledged although the batch failed: {frame}"
                            )
                        if frame["type"] == "error":
                            assert frame["code"] == "unavailable", frame
                            refs.add(frame["ref"])
                assert refs == {f"lost-{i}-{n}" for n in range(3)}
            await trouble
            async with state.sessions() as session:
                stored = await session.scalar(
                    select(func.count()).where(Message.content.like("lost %"))
                )
                seq = await session.scalar(select(Chat.last_seq).where(Chat.id == chat["id"]))
            assert stored == 0 and seq == last_seq
            # The database is back: the same client_ids are stored once, seqs without a gap.
            acks = await _send_all(sockets[0], chat["id"], "lost-0", 3)
            assert sorted(m["seq"] for m in acks.values()) == [
                last_seq + 1,
                last_seq + 2,
                last_seq + 3,
            ]
            for ws in sockets:
                await ws.close()
    finally:
        await stop_server(server, task)


async def _row_locked(pg_url: str, chat_id: int, go: asyncio.Event, seconds: float) -> None:
    """Holds the chat's row lock: the writer's batch waits, reads go on."""
    locker = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with locker.transaction():
            await locker.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat_id)
            go.set()
            await let_time_pass(seconds, "the row is locked this long")
    finally:
        await locker.close()


async def test_a_send_the_writer_cannot_take_within_a_second_is_overloaded(
    tmp_path: Path, database_url: str | None
) -> None:
    """The writer is stuck behind a held lock and its queue holds one send: the rest are
    refused with `overloaded` (503 + Retry-After over REST) instead of queueing forever,
    while health and logins keep answering; once the lock goes, the queued sends commit."""
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    running, server, task = await start_server(
        test_settings(tmp_path, PARLEY_SEND_QUEUE=1, **overrides)
    )
    try:
        async with httpx.AsyncClient(
            base_url=running.base, cookies=no_cookies(), timeout=30
        ) as http:
            a, b = await make_user(http), await make_user(http)
            chat = await make_group(http, a, b)
            ws = await connect(running.ws_base, a)
            await _send_all(ws, chat["id"], "warm", 1)  # the checks come from memory now
            go = asyncio.Event()
            if database_url is None:
                lock = asyncio.create_task(_sqlite_locked(tmp_path / "parley.db", go, 4.0))
            else:
                lock = asyncio.create_task(_row_locked(database_url, chat["id"], go, 4.0))
            await go.wait()
            for n in range(4):
                await ws.send(
                    json.dumps(
                        {
                            "type": "send",
                            "chat_id": chat["id"],
                            "content": f"o{n}",
                            "client_id": f"o{n}",
                        }
                    )
                )
            error = await recv_type(ws, "error", timeout=5)
            assert error["code"] == "overloaded" and error["ref"] in {"o2", "o3"}
            if database_url is not None:  # on SQLite the held lock stops every request
                rest = await http.post(
                    f"/service/api/chats/{chat['id']}/messages",
                    json={"content": "rest"},
                    headers=b.headers,
                )
                assert rest.status_code == 503 and rest.json()["code"] == "overloaded"
                assert rest.headers["retry-after"] == "1"
                assert (await http.get("/health")).status_code == 200
                login = await http.post(
                    "/service/api/login", json={"username": b.username, "password": b.password}
                )
                assert login.status_code == 200
            await lock
            acked = set()
            async with asyncio.timeout(15):
                while not {"o0", "o1"} <= acked:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "message":
                        acked.add(frame["message"]["client_id"])
            await ws.close()
    finally:
        await stop_server(server, task)


async def test_sync_to_a_client_that_stops_reading_does_not_hold_the_database(
    tmp_path: Path, database_url: str | None
) -> None:
    overrides: dict[str, object] = {"DATABASE_URL": database_url} if database_url else {}
    running, server, task = await start_server(
        test_settings(tmp_path, PARLEY_WS_SEND_QUEUE=4, **overrides)
    )
    state = running.state
    try:
        async with httpx.AsyncClient(
            base_url=running.base, cookies=no_cookies(), timeout=30
        ) as http:
            a, b = await make_user(http), await make_user(http)
            chat = await make_group(http, a, b)
            big = "x" * 40000
            rows = [
                {"chat_id": chat["id"], "seq": s, "sender_id": b.id, "content": f"{s} {big}"}
                for s in range(1, 501)
            ]
            async with state.sessions() as session:
                await session.execute(insert(Message), rows)
                await session.execute(
                    update(Chat).where(Chat.id == chat["id"]).values(last_seq=500)
                )
                await session.commit()
            slow = await _never_reading_socket(
                running.base, a, {"type": "sync", "chats": {str(chat["id"]): 0}}
            )
            await let_time_pass(1.0, "the server gets stuck sending to a client that does not read")
            started = asyncio.get_running_loop().time()
            sent = await http.post(
                f"/service/api/chats/{chat['id']}/messages",
                json={"content": "others go on"},
                headers=b.headers,
            )
            assert sent.status_code == 201 and sent.json()["seq"] == 501
            assert asyncio.get_running_loop().time() - started < 3
            # The stuck sync ends: the socket is closed with 1013 once its wait is over.
            await eventually(
                lambda: not state.hub.connections_of(a.id), 30, what="the stuck socket closed"
            )
            slow.close()
    finally:
        await stop_server(server, task)


async def _never_reading_socket(
    base: str, who: Account, first: dict[str, Any]
) -> asyncio.StreamWriter:
    """A WebSocket client with a tiny receive buffer that sends one frame, then never reads."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /service/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {who.access_token}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps(first).encode()
    mask = os.urandom(4)
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    await writer.drain()
    return writer


BACKGROUND = ("worker-", "bot-events", "push-", "parley-link-previews")


class _Statements:
    """Counts the statements the server's engine runs, by the tables they read."""

    def __init__(self, live: Running) -> None:
        self.engine = live.state.engine.sync_engine
        self.seen: list[str] = []

    def __enter__(self) -> _Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith(BACKGROUND):
            return  # sweeps, bot events, push and previews are not the send path
        self.seen.append(" ".join(statement.split()).lower())

    def reads_of(self, *tables: str) -> list[str]:
        """Plain selects of those tables (a `select distinct` is a background sweep's or a
        presence audience's, never a send check's)."""
        return [
            s
            for s in self.seen
            if s.startswith("select ")
            and not s.startswith("select distinct")
            and any(f"from {t} " in s + " " for t in tables)
        ]


async def test_a_first_send_after_the_handshake_asks_nothing_of_the_database(
    client: httpx.AsyncClient, live: Running
) -> None:
    """The handshake read the user's chats, peers, blocks and ban anyway (its direct
    peers' blocks too): the send checks keep them, and the first send of a fresh socket is
    checked from memory, even when the peer's own handshake was on another process."""
    a, b = await make_user(client), await make_user(client)
    direct = await make_direct(client, a, b)
    group = await make_group(client, a, b)
    ws_b = await connect(live.ws_base, b)
    live.state.checks.clear()  # as if b had connected to another process: nothing of b
    ws_a = await connect(live.ws_base, a)
    try:
        await recv_type(ws_b, "presence")  # a's arrival is announced: presence is done
        stored = live.state.writer.stored
        with _Statements(live) as statements:
            for n, chat in enumerate((direct, group)):
                await ws_a.send(
                    json.dumps({"type": "send", "chat_id": chat["id"], "content": f"first {n}"})
                )
                assert (await recv_type(ws_a, "message"))["message"]["content"] == f"first {n}"
        checks = statements.reads_of("memberships", "blocks", "bans", "users", "chats")
        assert checks == [], checks
        assert live.state.writer.stored == stored + 2  # the writer did store them
    finally:
        await ws_a.close()
        await ws_b.close()


async def test_a_block_read_at_the_handshake_still_refuses_the_first_send(
    client: httpx.AsyncClient, live: Running
) -> None:
    a, b = await make_user(client), await make_user(client)
    direct = await make_direct(client, a, b)
    blocked = await client.post("/service/api/block", json={"user_id": a.id}, headers=b.headers)
    assert blocked.status_code in (200, 201, 204), blocked.text
    ws_b = await connect(live.ws_base, b)
    live.state.checks.clear()  # b's blocks known only from a's handshake (its peer's)
    ws_a = await connect(live.ws_base, a)
    assert live.state.checks.blocks[b.id] == {a.id: None}
    try:
        await ws_a.send(json.dumps({"type": "send", "chat_id": direct["id"], "content": "hi"}))
        refused = await recv_type(ws_a, "error")
        assert refused["code"] == "blocked", refused
        # Unblocked through the API: the event reaches the cache and the next send passes.
        gone = await client.delete(f"/service/api/block/{a.id}", headers=b.headers)
        assert gone.status_code in (200, 204), gone.text
        await ws_a.send(json.dumps({"type": "send", "chat_id": direct["id"], "content": "hi"}))
        assert (await recv_type(ws_b, "message"))["message"]["content"] == "hi"
    finally:
        await ws_a.close()
        await ws_b.close()


async def test_a_rate_limit_store_that_is_down_answers_unavailable_and_loses_nothing(
    client: httpx.AsyncClient, live: Running
) -> None:
    """Redis gone (the rate limits' store): a send is refused as `unavailable` (REST 503,
    an error frame over the socket), not as an internal error, and once Redis is back the
    same client_id is stored once."""
    from parley.server.throttle import Throttle
    from tests.conftest import free_port

    a, b = await make_user(client), await make_user(client)
    chat = await make_group(client, a, b)
    kept = live.state.throttle
    live.state.throttle = Throttle(
        {"send": "100/second", "typing": "100/second"},
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        prefix="parley-test-down:",
    )
    ws = await connect(live.ws_base, a)
    try:
        body = {"content": "while down", "client_id": "down-1"}
        url = f"/service/api/chats/{chat['id']}/messages"
        answer = await client.post(url, json=body, headers=a.headers)
        assert (answer.status_code, answer.json()["code"]) == (503, "unavailable"), answer.text
        frame = {"type": "send", "chat_id": chat["id"], "content": "x", "client_id": "ws-down"}
        await ws.send(json.dumps(frame))
        refused = await recv_type(ws, "error")
        assert (refused["code"], refused["ref"]) == ("unavailable", "ws-down")
        live.state.throttle = kept
        for _ in range(2):
            answer = await client.post(url, json=body, headers=a.headers)
            assert answer.status_code in (200, 201), answer.text
        history = await client.get(url, headers=a.headers)
        assert [m["content"] for m in history.json()].count("while down") == 1
    finally:
        live.state.throttle = kept
        await ws.close()
