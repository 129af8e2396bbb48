"""Engine, sessions and migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from parley.clock import Clock
from parley.config import make_private_dir
from parley.server.db.unit import UnitOfWork

MIGRATIONS = Path(__file__).with_name("migrations")
READ_ONLY = "parley_read_only"  # an execution option: this connection's transactions only read
_PG_MIGRATION_LOCK = 7_211_000_001
# The first word of a statement, as a metric label; anything else is "other".
OPERATIONS = ("select", "insert", "update", "delete", "begin", "savepoint", "release", "other")
# Conflicts a transaction rolls back on and the caller retries or resolves, by SQLSTATE.
CONFLICTS = {"23505": "unique", "40001": "serialization", "40P01": "deadlock", "55P03": "lock"}
CONFLICT_REASONS = ("unique", "serialization", "deadlock", "lock")
# The writes a data-modifying CTE may do, the first found naming it (the writer's batch both
# updates and inserts: an insert).
_CTE_WRITES = tuple(
    (verb, re.compile(pattern, re.IGNORECASE))
    for verb, pattern in (
        ("insert", r"\binsert\s+into\b"),
        ("update", r"\bupdate\s+\w+(?:\s+\w+)?\s+set\b"),
        ("delete", r"\bdelete\s+from\b"),
    )
)


class CountingPool(AsyncAdaptedQueuePool):
    """The usual pool, counting the callers waiting for a connection (metrics)."""

    waiting = 0  # per pool: the first increment makes it an instance attribute

    def _do_get(self) -> Any:
        self.waiting += 1
        try:
            return super()._do_get()
        finally:
            self.waiting -= 1


# SQLAlchemy names a pool's logger after its class; keep ours as quiet as its own pools
# (warnings only), or every dispose logs "Pool recreating" at INFO.
logging.getLogger(f"{CountingPool.__module__}.{CountingPool.__name__}").setLevel(logging.WARNING)


def make_engine(url: str, *, pool_size: int = 10, pool_timeout: float | None = None) -> AsyncEngine:
    """`pool_timeout`: seconds a caller waits for a pooled connection (None: 30 on SQLite,
    10 on PostgreSQL); past it, SQLAlchemy's TimeoutError (503 `unavailable`)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            poolclass=CountingPool,
            pool_timeout=30 if pool_timeout is None else pool_timeout,
        )
        _tune_sqlite(engine)
        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10 if pool_timeout is None else pool_timeout,
        poolclass=CountingPool,
    )
    event.listen(engine.sync_engine, "checkout", _closed_while_pooled)
    return engine


def _closed_while_pooled(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """A pooled connection the server closed (a restart, an administrator's terminate) is
    replaced at checkout, from what asyncpg already knows: no round trip. SQLAlchemy's
    pre-ping would cost three per checkout (BEGIN, a query, ROLLBACK) on every request;
    measured in docs/performance.md ("Round trips on PostgreSQL and Redis"). A connection that died
    silently fails its first statement instead, and the pool then renews all of them."""
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def pool_usage(engine: AsyncEngine) -> tuple[int, int]:
    """Connections checked out of the pool, and callers waiting for one."""
    pool = engine.sync_engine.pool
    in_use = pool.checkedout() if isinstance(pool, AsyncAdaptedQueuePool) else 0
    return in_use, pool.waiting if isinstance(pool, CountingPool) else 0


def instrument(
    engine: AsyncEngine,
    on_query: Callable[[str, float], None],
    on_conflict: Callable[[str], None],
) -> None:
    """Reports each statement's duration by operation, and write conflicts by reason: those
    SQLAlchemy runs, and those run on the driver itself (`fetch_on_driver`)."""
    sync_engine = engine.sync_engine
    _OBSERVERS.setdefault(sync_engine, []).append((on_query, on_conflict))

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(
        _conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if context is not None:
            context._parley_started = time.perf_counter()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(_conn: Any, _cursor: Any, sql: str, _params: Any, context: Any, _many: bool) -> None:
        started = getattr(context, "_parley_started", None)
        if started is not None:
            on_query(operation(sql), time.perf_counter() - started)

    @event.listens_for(sync_engine, "handle_error")
    def _error(context: ExceptionContext) -> None:
        started = getattr(context.execution_context, "_parley_started", None)
        if started is not None and context.statement is not None:  # failed ones count too
            on_query(operation(context.statement), time.perf_counter() - started)
        reason = conflict_reason(context.original_exception)
        if reason is not None:
            on_conflict(reason)


# What `instrument` asked to hear of an engine, for the statements run past SQLAlchemy.
_OBSERVERS: weakref.WeakKeyDictionary[
    Any, list[tuple[Callable[[str, float], None], Callable[[str], None]]]
] = weakref.WeakKeyDictionary()


async def fetch_on_driver(
    conn: AsyncConnection, statement: ClauseElement, params: Mapping[str, Any]
) -> list[Any]:
    """The rows of one statement run on a PostgreSQL autocommit connection's asyncpg driver
    itself, past SQLAlchemy's execution layers (about 0.18 ms of CPU per statement on the
    bench machine, where asyncpg alone spends 0.13: docs/performance.md, "Where a
    message's CPU goes now"). Rows are asyncpg's records, unprocessed. It is reported
    to `instrument`'s observers as the engine's own statements are, and asyncpg's errors
    are raised as SQLAlchemy's (IntegrityError, else OperationalError, with the driver's
    error as `orig`), so callers handle them alike. Not inside a transaction SQLAlchemy
    began: its BEGIN is sent with its first statement, which this is not."""
    sql, names = _compiled(statement, conn.dialect)
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    observers = _OBSERVERS.get(conn.sync_engine, ())
    started = time.perf_counter()
    try:
        return cast(list[Any], await driver.fetch(sql, *(params[name] for name in names)))
    except Exception as exc:
        reason = conflict_reason(exc)
        if reason is not None:
            for _, on_conflict in observers:
                on_conflict(reason)
        if str(getattr(exc, "sqlstate", None) or "").startswith("23"):  # integrity violation
            raise IntegrityError(sql, None, exc) from exc
        raise OperationalError(sql, None, exc) from exc
    finally:
        elapsed = time.perf_counter() - started
        for on_query, _ in observers:
            on_query(operation(sql), elapsed)


@functools.cache
def _compiled(statement: ClauseElement, dialect: Any) -> tuple[str, tuple[str, ...]]:
    """The statement's SQL with the driver's positional markers, and its parameters' order."""
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    return str(compiled), tuple(compiled.positiontup or ())


@functools.lru_cache(maxsize=1024)  # a process runs a bounded set of statement texts
def operation(sql: str) -> str:
    word = sql.lstrip(" (\n\t").split(None, 1)[0].lower() if sql.strip() else ""
    if word == "with":  # a CTE: the statement's verb comes later; reads are the usual case,
        # a data-modifying one counts as the write it does (the writer's batch: an insert)
        word = next((verb for verb, pattern in _CTE_WRITES if pattern.search(sql)), "select")
    return word if word in OPERATIONS else "other"


def conflict_reason(exc: BaseException | None) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(code, str):
        return CONFLICTS.get(code)
    text_ = str(exc)
    if "database is locked" in text_:
        return "lock"
    if "UNIQUE constraint failed" in text_:
        return "unique"
    return None


def _tune_sqlite(engine: AsyncEngine) -> None:
    _create_private(engine.url.database)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer's IMMEDIATE takes the write lock up front: two writers queue instead of
        # deadlocking. A reader's plain (deferred) BEGIN never takes it: WAL gives it a
        # snapshot while writers go on.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _create_private(database: str | None) -> None:
    """Creates the database file 0600 before SQLite does: its -wal and -shm files copy
    the database file's permissions."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions for writing, or (read_only) for reading without SQLite's write lock."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, class_=UnitOfWork, expire_on_commit=False, autoflush=False)


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several servers starting at once: one migrates, the others wait then find nothing to do.
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        connection.commit()
        try:
            command.upgrade(_alembic_config(connection), "head")
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            connection.commit()
    else:
        command.upgrade(_alembic_config(connection), "head")


async def migrate(engine: AsyncEngine, lock_dir: Path | None = None) -> None:
    """Brings the schema to the newest revision; safe when several processes start at once."""
    with _file_lock(lock_dir):
        async with engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()


@contextlib.contextmanager
def _file_lock(lock_dir: Path | None) -> Iterator[None]:
    if lock_dir is None:
        yield
        return
    make_private_dir(lock_dir)
    fd = os.open(lock_dir / ".migrate.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def ping(engine: AsyncEngine, clock: Clock, seconds: float = 2.0) -> None:
    """Raises when the database does not answer a trivial query within `seconds`."""
    async with clock.timeout(seconds), engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


# SQLSTATE classes and codes of a database that cannot answer now, whatever was sent:
# connection (08), resources (53), operator intervention (57: shutdown, cancelled by a
# timeout), system (58), lock not available.
_UNREACHABLE_STATES = ("08", "53", "57", "58", "55P03")
_UNREACHABLE_SQLITE = ("database is locked", "busy", "unable to open", "disk i/o", "readonly")


def is_unreachable(exc: BaseException) -> bool:
    """The database could not be reached or could not answer (connection, lock, timeout):
    trying each send of a batch alone would only fail the same way, one by one."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (OSError, TimeoutError, PoolTimeout)):
        return True
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    if isinstance(orig, (OSError, TimeoutError)):
        return True
    if isinstance(orig, sqlite3.OperationalError):
        message = str(orig).lower()
        return any(words in message for words in _UNREACHABLE_SQLITE)
    if any(c.__name__ == "ConnectionDoesNotExistError" for c in type(orig).__mro__):
        return True
    return str(getattr(orig, "sqlstate", None) or "").startswith(_UNREACHABLE_STATES)


def is_race(exc: BaseException) -> bool:
    """Lost a race that trying again resolves: a unique key stored meanwhile by another
    process (a duplicate client_id), a PostgreSQL deadlock or serialization failure. Not
    any other integrity error (a foreign key): that one fails the same way again."""
    return conflict_reason(getattr(exc, "orig", None)) in {"unique", "deadlock", "serialization"}
