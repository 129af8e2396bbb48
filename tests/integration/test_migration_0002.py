"""Revision 0002 on a database that already has messages: up, down and up again."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.server.db.session import _alembic_config, make_engine


@pytest.fixture
async def engine(database_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A fresh, empty database of the backend under test."""
    if database_url is None:
        made = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        yield made
        await made.dispose()
        return
    from tests.conftest import PG_DSN, _create_database, _drop_database

    name = "parley_m2_" + os.urandom(4).hex()
    await _create_database(name)
    made = make_engine(
        f"{PG_DSN.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    )
    yield made
    await made.dispose()
    await _drop_database(name)


def _to(revision: str, *, down: bool = False) -> object:
    def run(connection: Connection) -> None:
        config = _alembic_config(connection)
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    return run


def _found(connection: Connection, word: str) -> bool:
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :q"
    else:
        query = "SELECT count(*) FROM messages WHERE search_vector @@ to_tsquery('simple', :q)"
    return bool(connection.execute(text(query), {"q": word}).scalar_one())


async def test_upgrade_keeps_messages_searchable_and_downgrade_undoes_it(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        await conn.run_sync(_to("0001"))  # type: ignore[arg-type]
        await conn.execute(
            text(
                "INSERT INTO users (id, username, username_key, email, email_key, password_hash,"
                " display_name, bio, is_admin, created_at) VALUES"
                " (1, 'ann', 'ann', 'a@x.io', 'a@x.io', 'x', 'Ann', '', false, CURRENT_TIMESTAMP)"
            ),
        )
        await conn.execute(
            text(
                "INSERT INTO chats (id, type, title, description, is_public, created_at,"
                " last_seq, last_activity_at)"
                " VALUES (1, 'group', 'T', '', false, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP)"
            ),
        )
        await conn.execute(
            text(
                "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at)"
                " VALUES (1, 1, 1, 1, 'see [docs](https://example.com/guide/setup)',"
                " CURRENT_TIMESTAMP)"
            ),
        )
        await conn.commit()
        await conn.run_sync(_to("head"))  # type: ignore[arg-type]
        await conn.commit()
        assert await conn.run_sync(_found, "setup")  # the path's words, on both databases
        assert await conn.run_sync(_found, "docs")
        await conn.execute(
            text("INSERT INTO message_mentions VALUES (1, 1, 1, 1)")  # the table exists
        )
        await conn.execute(text("UPDATE memberships SET muted_until = NULL"))
        await conn.commit()
        await conn.run_sync(_to("0001", down=True))  # type: ignore[arg-type]
        await conn.commit()
        assert await conn.run_sync(_found, "docs")
        await conn.run_sync(_to("head"))  # type: ignore[arg-type]
        await conn.commit()
        assert await conn.run_sync(_found, "setup")
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert version == [("0002",)]
