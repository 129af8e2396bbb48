"""The message writer alone: CPU per persisted message and statements per batch.

    .venv/bin/python -m bench.writer_batch [sqlite|postgres] [batch size] [rounds]

Drives `Writer` directly (no sockets, no fan-out) against a fresh database: each round
submits `batch` drafts at once (spread over 4 chats, every draft with a client_id, one in
eight naming a member with `@`), so the writer stores them in one transaction, and waits
for them all. Prints the process CPU per stored message (time.process_time, the database
server's own CPU is not counted) and the statements executed per batch.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, insert

from parley.clock import Clock
from parley.server.db.models import Chat, Membership, User
from parley.server.db.session import make_engine, make_sessionmaker, migrate
from parley.server.messages.drafts import Draft
from parley.server.messages.writer import Writer
from parley.server.realtime.broker import InProcessBroker

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
CHATS, MEMBERS = 4, 5
DEBUG = bool(os.environ.get("WRITER_BENCH_DEBUG"))


async def run(kind: str, batch: int, rounds: int) -> None:
    name = "parley_writer_bench_" + uuid.uuid4().hex[:8]
    if kind == "postgres":
        admin = await asyncpg.connect(PG)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = PG.rsplit("/", 1)[0].replace("postgresql:", "postgresql+asyncpg:") + "/" + name
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/{name}.db"
    engine = make_engine(url)
    statements = [0]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*args: Any) -> None:
        if str(args[2]).split(None, 1)[0].upper().rstrip(";") not in {
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
        }:
            statements[0] += 1
        if DEBUG:
            print(" ".join(str(args[2]).split())[:100])

    if kind == "postgres":  # the batch statement runs on asyncpg itself: its logger sees it

        @event.listens_for(engine.sync_engine, "connect")
        def _trace(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn._connection.add_query_logger(lambda logged: _count(None, None, logged.query))

    try:
        await migrate(engine)
        sessions = make_sessionmaker(engine)
        async with sessions() as session:
            users = [
                {
                    "id": n,
                    "username": f"user{n}",
                    "username_key": f"user{n}",
                    "email": f"u{n}@example.com",
                    "email_key": f"u{n}@example.com",
                    "password_hash": "x",
                    "display_name": f"U {n}",
                }
                for n in range(1, MEMBERS + 1)
            ]
            await session.execute(insert(User), users)
            await session.execute(
                insert(Chat), [{"id": c, "type": "group"} for c in range(1, CHATS + 1)]
            )
            await session.execute(
                insert(Membership),
                [
                    {"chat_id": c, "user_id": u, "role": "owner" if u == 1 else "member"}
                    for c in range(1, CHATS + 1)
                    for u in range(1, MEMBERS + 1)
                ],
            )
            await session.commit()
        writer = Writer(sessions, InProcessBroker(), Clock(), max_batch=batch)

        async def one_round(r: int) -> None:
            drafts = []
            for n in range(batch):
                text = (
                    f"hello @user{(n + 1) % MEMBERS + 1}"
                    if n % 8 == 0
                    else f"round {r} message {n}"
                )
                drafts.append(Draft(n % MEMBERS + 1, n % CHATS + 1, text, client_id=f"{r}-{n}"))
            futures = [await writer.submit(d) for d in drafts]
            await asyncio.gather(*futures)

        for r in range(3):  # warm up (compiled caches, connections)
            await one_round(-r - 1)
        statements[0] = 0
        batches, stored = writer.batches, writer.stored
        cpu, wall = time.process_time(), time.perf_counter()
        for r in range(rounds):
            await one_round(r)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        batches, stored = writer.batches - batches, writer.stored - stored
        await writer.close()
        print(
            f"{kind}: batch {batch}: {stored} messages in {batches} batches; "
            f"{cpu / stored * 1e6:.0f} µs CPU per message; "
            f"{wall / batches * 1e3:.1f} ms per batch; "
            f"{statements[0] / batches:.1f} statements per batch (BEGIN/COMMIT not counted)"
        )
    finally:
        await engine.dispose()
        if kind == "postgres":
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        else:
            Path(url.split("///", 1)[1]).unlink(missing_ok=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        run(
            args[0] if args else "sqlite",
            int(args[1]) if len(args) > 1 else 50,
            int(args[2]) if len(args) > 2 else 100,
        )
    )
