"""The server's database metrics: query time by operation (bounded labels), pool usage,
transaction retries (conflicts), on SQLite and PostgreSQL, and as /service/metrics shows them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.server.db.session import (
    OPERATIONS,
    fetch_on_driver,
    instrument,
    make_engine,
    operation,
    pool_usage,
)
from tests.conftest import PG_DSN, Running, no_cookies, postgres_available
from tests.factories import make_group, make_user
from tests.waiting import eventually


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", pool_size=1)
        yield eng
        await eng.dispose()
        return
    if problem := await postgres_available():
        pytest.skip(f"PostgreSQL: {problem}")
    name = f"parley_dbm_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    eng = make_engine(f"{base}/{name}", pool_size=1)
    try:
        yield eng
    finally:
        await eng.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_operation_labels_are_bounded() -> None:
    assert operation("SELECT 1") == "select"
    assert operation("  insert into t values (1)") == "insert"
    assert operation("(SELECT 1) UNION (SELECT 2)") == "select"
    assert operation("WITH x AS (SELECT 1) SELECT * FROM x") == "select"
    assert operation("WITH x AS (SELECT id FROM t FOR UPDATE) SELECT * FROM x") == "select"
    assert operation("WITH u AS (UPDATE t SET a = 1) INSERT INTO m SELECT 1") == "insert"
    assert operation("WITH u AS (UPDATE chats c SET a = 1 RETURNING c.id) SELECT 1") == "update"
    assert operation("BEGIN IMMEDIATE") == "begin"
    assert operation("SAVEPOINT sa_1") == "savepoint"
    assert operation("PRAGMA foreign_keys=ON") == "other"
    assert operation("DROP TABLE whatever_user_typed") == "other"
    assert operation("") == "other"
    assert set(map(operation, ["VACUUM", "select", "Update x", "delete"])) <= set(OPERATIONS)


async def test_queries_and_conflicts_are_reported(engine: AsyncEngine) -> None:
    queries: list[tuple[str, float]] = []
    conflicts: list[str] = []
    instrument(engine, lambda op, s: queries.append((op, s)), conflicts.append)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE probe (k INTEGER PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO probe VALUES (1)"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO probe VALUES (1)"))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM probe"))).scalar_one() == 1
    ops = [op for op, _ in queries]
    assert ops.count("insert") == 2 and "select" in ops and "other" in ops  # CREATE: other
    assert all(seconds >= 0 for _, seconds in queries)
    assert set(ops) <= set(OPERATIONS)
    assert conflicts == ["unique"]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # SQLite's: sqlite3 itself
async def test_a_statement_run_on_asyncpg_itself_is_reported_and_fails_as_sqlalchemys(
    engine: AsyncEngine,
) -> None:
    """The writer's batch runs past SQLAlchemy (`fetch_on_driver`): the metrics still see it,
    and its errors are the ones the writer and the handlers know."""
    queries: list[tuple[str, float]] = []
    conflicts: list[str] = []
    instrument(engine, lambda op, s: queries.append((op, s)), conflicts.append)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE probe (k INTEGER PRIMARY KEY, v TEXT)"))
    queries.clear()
    insert = text("INSERT INTO probe SELECT k, :v FROM unnest(CAST(:ks AS int[])) k RETURNING k, v")
    async with engine.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = await fetch_on_driver(auto, insert, {"ks": [1, 2], "v": "x"})
        assert [(r["k"], r["v"]) for r in rows] == [(1, "x"), (2, "x")]
        with pytest.raises(IntegrityError) as duplicate:
            await fetch_on_driver(auto, insert, {"ks": [3, 2], "v": "y"})
        assert duplicate.value.orig.sqlstate == "23505"  # type: ignore[union-attr]
        with pytest.raises(OperationalError):
            await fetch_on_driver(auto, text("SELECT 1 / CAST(:d AS int)"), {"d": 0})
        count = (await conn.execute(text("SELECT count(*) FROM probe"))).scalar_one()
    assert count == 2  # autocommit: the first stored, the failed one nothing
    assert [op for op, _ in queries] == ["insert", "insert", "select", "select"]
    assert conflicts == ["unique"]


async def test_pool_in_use_and_waiting(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    limit = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
    holders = [await engine.connect() for _ in range(limit)]  # the pool is exhausted
    try:
        assert pool_usage(engine) == (limit, 0)
        waiter = asyncio.create_task(engine.connect().__aenter__())
        await eventually(lambda: pool_usage(engine)[1] == 1, what="one waiter")
        assert pool_usage(engine) == (limit, 1)
        await holders.pop().close()
        extra = await asyncio.wait_for(waiter, 5)
        assert pool_usage(engine) == (limit, 0)
        await extra.close()
    finally:
        for conn in holders:
            await conn.close()
    assert pool_usage(engine) == (0, 0)


def samples(text_: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text_):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_service_metrics_expose_the_database_series(live: Running) -> None:
    async with httpx.AsyncClient(base_url=live.base, timeout=20, cookies=no_cookies()) as http:
        owner, member = await make_user(http), await make_user(http)
        chat = await make_group(http, owner, member, title="metrics")
        sent = await http.post(f"/service/api/chats/{chat['id']}/messages",
                               headers=owner.headers, json={"content": "counted"})  # fmt: skip
        assert sent.status_code == 201
        body = (await http.get("/service/metrics")).text
    found = samples(body)
    by_op = {
        dict(labels)["operation"]: value
        for (name, labels), value in found.items()
        if name == "db_query_duration_seconds_count"
    }
    assert set(by_op) == set(OPERATIONS)  # every label exists, none other
    assert by_op["insert"] >= 1 and by_op["select"] >= 1
    reasons = {dict(labels)["reason"] for (name, labels) in found if
               name == "db_transaction_retries_total"}  # fmt: skip
    assert reasons == {"unique", "serialization", "deadlock", "lock"}
    assert ("db_pool_connections_in_use", ()) in found
    assert found[("db_pool_connections_waiting", ())] >= 0  # background work may wait a moment
    assert found[("process_resident_memory_bytes", ())] > 0
