"""The writer's batch statement: what one batch writes, and in how many statements.

On PostgreSQL a batch is one statement (two when a text names someone with `@`: the
members are looked up first); on SQLite a few, none per message. Both databases, real
ones; the writer under test gets its own engine so the live server's own queries are
not counted.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from parley.clock import Clock
from parley.server.accounts.schemas import SenderPublic
from parley.server.db.models import Chat, Membership, Message, MessageMention
from parley.server.db.session import (
    conflict_reason,
    instrument,
    make_engine,
    make_sessionmaker,
)
from parley.server.messages.drafts import Draft, Result
from parley.server.messages.writer import Writer
from parley.server.realtime.broker import InProcessBroker
from tests.conftest import Running
from tests.factories import Account, make_group, make_user
from tests.waiting import eventually, let_time_pass


class Counted:
    """An engine of its own on the live server's database, counting its statements."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.conflicts: list[str] = []
        # Conflicts as the service's metrics hear of them, whoever ran the statement.
        instrument(engine, lambda _op, _seconds: None, self.conflicts.append)
        event.listen(engine.sync_engine, "handle_error", self._on_error)
        # Statements as the driver runs them: the writer's batch runs on it directly. On
        # PostgreSQL those SQLAlchemy runs (prepared, which asyncpg's logger does not see),
        # and those run on asyncpg's connection itself.
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", self._trace_sqlite)
        else:
            event.listen(engine.sync_engine, "before_cursor_execute", self._on_statement)
            event.listen(engine.sync_engine, "connect", self._trace_asyncpg)

    def _trace_sqlite(self, dbapi_conn: Any, _record: Any) -> None:
        """Every statement SQLite runs on this connection, whoever sent it."""
        driver = dbapi_conn._connection  # aiosqlite's: sqlite3 lives in its thread
        await_only(driver._execute(driver._conn.set_trace_callback, self._on_sqlite))

    def _on_sqlite(self, sql: str) -> None:
        if sql.startswith("--"):  # a trigger's statement (full-text index), not one sent
            return
        if sql.split(None, 1)[0].upper() in {"BEGIN", "COMMIT", "ROLLBACK", "PRAGMA"}:
            return
        # SQLite reports a statement again as it resumes it (after each trigger program of
        # an INSERT ... RETURNING): one run is one entry.
        if not self.statements or self.statements[-1] != sql:
            self.statements.append(sql)

    def _on_error(self, context: ExceptionContext) -> None:
        if conflict_reason(context.original_exception) is None:  # not a conflict: still seen
            self.conflicts.append("other")

    def _trace_asyncpg(self, dbapi_conn: Any, _record: Any) -> None:
        """Every statement asyncpg runs on this connection, whoever sent it."""
        dbapi_conn._connection.add_query_logger(self._on_asyncpg)

    def _on_asyncpg(self, logged: Any) -> None:
        if "typeinfo_tree" in logged.query or "set_config('jit'" in logged.query:
            return  # asyncpg learning an array type, once per connection: not the batch's
        self._on_statement(None, None, logged.query)

    def _on_statement(self, _conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        if sql.split(None, 1)[0].upper().rstrip(";") not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            self.statements.append(sql)

    def writer(self) -> Writer:
        return Writer(make_sessionmaker(self.engine), InProcessBroker(), Clock())


@pytest.fixture
async def counted(live: Running) -> AsyncIterator[Counted]:
    engine = make_engine(live.state.engine.url.render_as_string(hide_password=False))
    yield Counted(engine)
    await engine.dispose()


def _draft(who: Account, chat_id: int, content: str, client_id: str | None = None) -> Draft:
    sender = SenderPublic(id=who.id, username=who.username, display_name=who.username)
    return Draft(who.id, chat_id, content, client_id=client_id, sender=sender)


async def _batch(writer: Writer, drafts: list[Draft]) -> list[Result]:
    """Submits every draft before the writer task runs once: they form one batch."""
    batches = writer.batches
    futures = [await writer.submit(d) for d in drafts]
    results = list(await asyncio.wait_for(asyncio.gather(*futures), 20))
    assert writer.batches == batches + 1, "the drafts were not written in one batch"
    return results


async def test_one_batch_of_several_chats_with_resends_in_one_or_two_statements(
    client: httpx.AsyncClient, live: Running, counted: Counted, database_url: str | None
) -> None:
    ann, bob, cid = [await make_user(client) for _ in range(3)]
    one = (await make_group(client, ann, bob, cid))["id"]
    two = (await make_group(client, ann, bob))["id"]
    writer = counted.writer()
    try:
        [(earlier, _)] = await _batch(writer, [_draft(ann, one, "earlier", client_id="a-1")])
        counted.statements.clear()
        drafts = [
            _draft(ann, one, "earlier", client_id="a-1"),  # a resend: stored above
            _draft(ann, one, f"hi @{bob.username}", client_id="a-2"),
            _draft(bob, two, "in two", client_id="b-1"),
            _draft(bob, one, "in one", client_id="b-2"),
            _draft(ann, two, "no client id"),
            _draft(bob, one, "in one", client_id="b-2"),  # the same send twice in a batch
            _draft(cid, one, "from cid", client_id="c-1"),
        ]
        results = await _batch(writer, drafts)
        mixed = list(counted.statements)
        counted.statements.clear()
        plain = await _batch(writer, [_draft(cid, one, f"plain {n}", f"p-{n}") for n in range(4)])
    finally:
        await writer.close()

    if database_url is not None:  # PostgreSQL: the mention lookup, then the batch statement
        assert len(mixed) == 2, mixed
        assert len(counted.statements) == 1, counted.statements
    else:  # SQLite: a few, however many messages (none per message)
        assert len(mixed) <= 6, mixed
        assert len(counted.statements) == 3, counted.statements
    assert [m.seq for m, is_new in plain if is_new] == [5, 6, 7, 8]

    new = [r.model_dump() for r, is_new in results if is_new]
    assert [is_new for _, is_new in results] == [False, True, True, True, True, False, True]
    assert results[0][0].model_dump() == earlier.model_dump()
    assert results[5][0].model_dump() == results[3][0].model_dump()
    # batch order within each chat; chat one had one message already
    assert [(m["chat_id"], m["seq"], m["content"]) for m in new] == [
        (one, 2, f"hi @{bob.username}"),
        (two, 1, "in two"),
        (one, 3, "in one"),
        (two, 2, "no client id"),
        (one, 4, "from cid"),
    ]
    assert results[1][0].mentions == [bob.id]
    assert len({m["id"] for m in new}) == 5

    async with live.state.sessions() as session:
        stored = {
            m.id: m
            for m in (
                await session.execute(select(Message).where(Message.chat_id.in_([one, two])))
            ).scalars()
        }
        last_seq = dict(
            (await session.execute(select(Chat.id, Chat.last_seq).where(Chat.id.in_([one, two]))))
            .tuples()
            .all()
        )
        markers = {
            (c, u): s
            for c, u, s in (
                await session.execute(
                    select(Membership.chat_id, Membership.user_id, Membership.last_read_seq).where(
                        Membership.chat_id.in_([one, two])
                    )
                )
            ).tuples()
        }
        mentioned = (
            (await session.execute(select(MessageMention).where(MessageMention.chat_id == one)))
            .scalars()
            .all()
        )
    assert len(stored) == 10
    for m in new:
        row = stored[m["id"]]
        assert (row.chat_id, row.seq, row.content, row.client_id) == (
            m["chat_id"],
            m["seq"],
            m["content"],
            m["client_id"],
        )
        assert row.created_at == m["created_at"]
    assert last_seq == {one: 8, two: 2}
    # each sender has read up to the last message it wrote; the others did not move
    assert markers == {
        (one, ann.id): 2,
        (one, bob.id): 3,
        (one, cid.id): 8,
        (two, ann.id): 2,
        (two, bob.id): 1,
    }
    assert [(x.message_id, x.user_id, x.seq) for x in mentioned] == [(results[1][0].id, bob.id, 2)]


async def _hold_chat(
    live: Running, database_url: str | None, chat_id: int, go: asyncio.Event, done: asyncio.Event
) -> None:
    """Holds the chat's row lock (PostgreSQL) or the write lock (SQLite) until `done`."""
    if database_url is None:
        db = sqlite3.connect(
            live.state.engine.url.database, isolation_level=None, check_same_thread=False
        )
        try:  # in a thread: a write of the live server (same event loop) can finish meanwhile
            await asyncio.to_thread(db.execute, "BEGIN IMMEDIATE")
            go.set()
            await done.wait()
            db.execute("ROLLBACK")
        finally:
            db.close()
        return
    locker = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with locker.transaction():
            await locker.execute("SELECT id FROM chats WHERE id = $1 FOR UPDATE", chat_id)
            go.set()
            await done.wait()
    finally:
        await locker.close()


async def _waiting_batches(database_url: str, count: int) -> None:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:

        async def waiting() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'WITH input%' AND datname = current_database()"
                )
                >= count
            )

        await eventually(waiting, 10, what=f"{count} batches waiting on the lock")
    finally:
        await conn.close()


async def test_the_same_client_id_from_two_processes_is_stored_once(
    client: httpx.AsyncClient, live: Running, counted: Counted, database_url: str | None
) -> None:
    """Two writers (as in two server processes, each its own engine) take the same send at
    once, with other sends around it. On PostgreSQL both batches start before either
    commits: the second fails on the unique constraint, is tried again and finds the
    first's message. Either way: one row, one seq, both answered with it."""
    ann, bob = await make_user(client), await make_user(client)
    chat = (await make_group(client, ann, bob))["id"]
    other = Counted(make_engine(live.state.engine.url.render_as_string(hide_password=False)))
    writers = [counted.writer(), other.writer()]
    go, done = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold_chat(live, database_url, chat, go, done))
    try:
        await go.wait()
        pending = [
            asyncio.create_task(
                _batch(
                    w,
                    [
                        _draft(bob, chat, f"before {n}", client_id=f"b-{n}"),
                        _draft(ann, chat, "twice", client_id="the-one"),
                        _draft(bob, chat, f"after {n}"),
                    ],
                )
            )
            for n, w in enumerate(writers)
        ]
        if database_url is not None:
            await _waiting_batches(database_url, 2)
        else:  # nothing shows a waiting SQLite batch; the outcome is right either way
            await let_time_pass(0.3, "both batches reach SQLite's write lock")
        done.set()
        first, second = await asyncio.gather(*pending)
    finally:
        done.set()
        await holder
        for w in writers:
            await w.close()
        await other.engine.dispose()

    assert first[1][0].id == second[1][0].id
    assert sorted([first[1][1], second[1][1]]) == [False, True]
    if database_url is not None:  # the race happened, and was resolved by trying again
        assert counted.conflicts + other.conflicts == ["unique"]
    async with live.state.sessions() as session:
        rows = (
            await session.execute(
                select(Message.seq, Message.client_id).where(Message.chat_id == chat)
            )
        ).all()
    assert sorted(seq for seq, _ in rows) == [1, 2, 3, 4, 5]
    assert [c for _, c in rows].count("the-one") == 1


async def test_a_batch_with_a_chat_gone_fails_only_that_send_and_stores_the_rest_once(
    client: httpx.AsyncClient, live: Running, counted: Counted
) -> None:
    ann, bob = await make_user(client), await make_user(client)
    chat = (await make_group(client, ann, bob))["id"]
    gone = 10**9  # no such chat: as if deleted while the send waited for the writer
    writer = counted.writer()
    try:
        futures = [
            await writer.submit(_draft(ann, chat, "kept 1", client_id="k-1")),
            await writer.submit(_draft(bob, gone, "lost", client_id="g-1")),
            await writer.submit(_draft(bob, chat, "kept 2")),
        ]
        answers = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 20)
    finally:
        await writer.close()
    kept1, lost, kept2 = answers
    assert isinstance(lost, Exception) and getattr(lost, "code", None) == "chat_not_found"
    assert not isinstance(kept1, BaseException) and not isinstance(kept2, BaseException)
    assert [(m.seq, m.content, new) for m, new in (kept1, kept2)] == [
        (1, "kept 1", True),
        (2, "kept 2", True),
    ]
    async with live.state.sessions() as session:
        stored = (
            await session.execute(
                select(Message.content).where(Message.chat_id == chat).order_by(Message.seq)
            )
        ).scalars()
        assert list(stored) == ["kept 1", "kept 2"]
        assert await session.scalar(select(Chat.last_seq).where(Chat.id == chat)) == 2


async def test_the_writer_keeps_one_connection_across_batches(
    client: httpx.AsyncClient, live: Running, counted: Counted
) -> None:
    """The writer keeps its connection from one batch to the next: no checkout, and no
    return to the pool (whose reset is a round trip, or a hand-off to SQLite's thread),
    per batch. Between batches it holds no lock: the server's own sends go on."""
    ann, bob = await make_user(client), await make_user(client)
    chat = (await make_group(client, ann, bob))["id"]
    checkouts: list[int] = []
    checkins: list[int] = []
    event.listen(counted.engine.sync_engine, "checkout", lambda *_: checkouts.append(1))
    event.listen(counted.engine.sync_engine, "checkin", lambda *_: checkins.append(1))
    writer = counted.writer()
    try:
        for n in range(4):
            [(message, new)] = await _batch(writer, [_draft(ann, chat, f"batch {n}")])
            assert new and message.seq == 2 * n + 1
            async with asyncio.timeout(5):  # through the live server, its own connection
                sent = await client.post(
                    f"/service/api/chats/{chat}/messages",
                    headers=bob.headers,
                    json={"content": f"between {n}"},
                )
            assert sent.status_code == 201 and sent.json()["seq"] == 2 * n + 2
        assert (len(checkouts), len(checkins)) == (1, 0)
    finally:
        await writer.close()
    assert len(checkins) == 1
    async with live.state.sessions() as session:
        assert await session.scalar(select(Chat.last_seq).where(Chat.id == chat)) == 8


def _flood(n: int) -> str:
    """Fifty distinct `@` tokens ending in punctuation: each may be any of 30 usernames
    (`x00..`, `x00...`...), so about 1,500 candidate names in one message."""
    return " ".join(f"@m{n}t{t:02d}" + "." * 30 for t in range(50))


async def test_a_mention_flood_beside_ordinary_sends_fails_nobody(
    client: httpx.AsyncClient, live: Running, counted: Counted
) -> None:
    """Ten mention floods in one batch used to make a `(chat, name) IN (...)` list the
    database refused, failing every send of the batch. Now the names are bounded and go
    in one array parameter: the floods are stored (naming nobody) and so is everyone
    else's send, once."""
    ann, bob, cid = [await make_user(client) for _ in range(3)]
    chat = (await make_group(client, ann, bob, cid))["id"]
    other = (await make_group(client, bob, cid))["id"]
    writer = counted.writer()
    try:
        drafts = [_draft(ann, chat, _flood(n), client_id=f"f-{n}") for n in range(10)]
        drafts.insert(3, _draft(bob, chat, f"hi @{cid.username}.", client_id="b-1"))
        drafts.append(_draft(cid, other, "ordinary", client_id="c-1"))
        results = await _batch(writer, drafts)
    finally:
        await writer.close()
    assert all(is_new for _, is_new in results)
    by_client = {m.client_id: m for m, _ in results}
    assert by_client["b-1"].mentions == [cid.id]
    assert by_client["c-1"].content == "ordinary" and by_client["c-1"].seq == 1
    assert all(by_client[f"f-{n}"].mentions == [] for n in range(10))
    async with live.state.sessions() as session:
        rows = (
            await session.execute(
                select(Message.client_id).where(Message.chat_id.in_([chat, other]))
            )
        ).scalars()
        assert sorted(rows) == sorted(["b-1", "c-1", *(f"f-{n}" for n in range(10))])


async def test_a_send_the_database_refuses_fails_alone_and_the_batch_is_stored_once(
    client: httpx.AsyncClient, live: Running, counted: Counted
) -> None:
    """A draft naming a message that does not exist as its reply (as if it vanished
    between the check and the write) breaks a foreign key: the batch fails, is tried
    again send by send, and only that send gets the error; the others are stored once."""
    ann, bob = await make_user(client), await make_user(client)
    chat = (await make_group(client, ann, bob))["id"]
    writer = counted.writer()
    bad = _draft(bob, chat, "a reply to nothing", client_id="bad")
    bad.reply_to = 10**12
    try:
        drafts = [
            _draft(ann, chat, "first", client_id="a-1"),
            bad,
            _draft(ann, chat, "third"),  # no client_id: a second store would duplicate it
            _draft(bob, chat, "fourth", client_id="b-4"),
        ]
        futures = [await writer.submit(d) for d in drafts]
        answers = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 20)
    finally:
        await writer.close()
    first, refused, third, fourth = answers
    assert isinstance(refused, Exception), refused
    assert not isinstance(first, BaseException) and not isinstance(third, BaseException)
    assert not isinstance(fourth, BaseException)
    assert [(m.content, new) for m, new in (first, third, fourth)] == [
        ("first", True),
        ("third", True),
        ("fourth", True),
    ]
    async with live.state.sessions() as session:
        stored = (
            await session.execute(
                select(Message.seq, Message.content).where(Message.chat_id == chat)
            )
        ).all()
        assert sorted(stored) == [(1, "first"), (2, "third"), (3, "fourth")]
        assert await session.scalar(select(Chat.last_seq).where(Chat.id == chat)) == 3


async def test_a_failing_send_with_attachments_fails_alone(
    client: httpx.AsyncClient, live: Running, counted: Counted
) -> None:
    """A send with attachments is its own transaction; its failure (here a reply to a
    message that does not exist, refused by the database) used to fail every plain send
    of its batch too. Now only it fails, and the others are stored once."""
    ann, bob = await make_user(client), await make_user(client)
    chat = (await make_group(client, ann, bob))["id"]
    bad = _draft(bob, chat, "with a file", client_id="bad")
    bad.reply_to, bad.attachment_ids = 10**12, (10**12,)
    writer = counted.writer()
    try:
        futures = [
            await writer.submit(_draft(ann, chat, "plain 1", client_id="p-1")),
            await writer.submit(bad),
            await writer.submit(_draft(ann, chat, "plain 2")),
        ]
        plain1, refused, plain2 = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), 20
        )
    finally:
        await writer.close()
    assert isinstance(refused, Exception), refused
    assert not isinstance(plain1, BaseException) and not isinstance(plain2, BaseException)
    assert [(m.seq, m.content) for m, _ in (plain1, plain2)] == [(1, "plain 1"), (2, "plain 2")]
    async with live.state.sessions() as session:
        stored = (
            await session.execute(select(Message.content).where(Message.chat_id == chat))
        ).scalars()
        assert sorted(stored) == ["plain 1", "plain 2"]
