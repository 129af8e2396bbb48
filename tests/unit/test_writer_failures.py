"""Which failures of a batch are the database's being unreachable (everyone's sends fail)
and which are one send's (the batch is tried again send by send)."""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from parley import errors
from parley.server.db.session import is_unreachable


def _wrapped(orig: Exception, kind: type[DBAPIError] = OperationalError) -> DBAPIError:
    return kind("message batch", None, orig)


def test_a_database_that_cannot_answer_is_unreachable() -> None:
    assert is_unreachable(_wrapped(sqlite3.OperationalError("database is locked")))
    assert is_unreachable(_wrapped(sqlite3.OperationalError("unable to open database file")))
    assert is_unreachable(_wrapped(ConnectionResetError()))
    assert is_unreachable(_wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("gone")))
    assert is_unreachable(_wrapped(asyncpg.exceptions.AdminShutdownError("shutdown")))
    assert is_unreachable(_wrapped(asyncpg.exceptions.QueryCanceledError("timeout")))
    assert is_unreachable(_wrapped(asyncpg.exceptions.TooManyConnectionsError("full")))
    assert is_unreachable(PoolTimeout("pool"))
    assert is_unreachable(OSError("refused"))


def test_what_one_send_caused_is_not() -> None:
    assert not is_unreachable(_wrapped(sqlite3.IntegrityError("FOREIGN KEY"), IntegrityError))
    assert not is_unreachable(_wrapped(sqlite3.OperationalError("too many SQL variables")))
    assert not is_unreachable(
        _wrapped(asyncpg.exceptions.StatementTooComplexError("stack depth limit exceeded"))
    )
    assert not is_unreachable(_wrapped(asyncpg.exceptions.ForeignKeyViolationError("fk")))
    assert not is_unreachable(_wrapped(asyncpg.exceptions.CharacterNotInRepertoireError("nul")))
    assert not is_unreachable(errors.ValidationFailed("bad"))
    assert not is_unreachable(ValueError("a fault of ours"))
