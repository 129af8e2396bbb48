"""Revision 0005_threads on a database with messages: `messages` gains the thread columns
in place (no message lost, every message a root without replies), `thread_follows` is
created; down and up again."""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import alembic_to
from tests.integration.test_migration_0004_integrations import _counts, _seed


def _thread_columns(connection: Connection) -> tuple[object, ...]:
    row = connection.execute(
        text(
            "SELECT thread_root_id, also_in_chat, reply_count, last_reply_at,"
            " thread_participants FROM messages WHERE id = 1"
        )
    ).one()
    return (row[0], bool(row[1]), row[2], row[3], row[4])


def _follows(connection: Connection) -> int:
    connection.execute(
        text(
            "INSERT INTO thread_follows (root_id, user_id, chat_id, following, last_read_seq)"
            " VALUES (1, 1, 1, true, 0)"
        )
    )
    return int(connection.execute(text("SELECT count(*) FROM thread_follows")).scalar_one())


async def test_messages_gain_thread_columns_and_lose_nothing(
    migration_engine: AsyncEngine,
) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0004_integrations"))
        await conn.run_sync(_seed)
        await conn.commit()
        before = await conn.run_sync(_counts)
        await conn.run_sync(alembic_to("0005_threads"))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
        assert await conn.run_sync(_thread_columns) == (None, False, 0, None, "")
        assert await conn.run_sync(_follows) == 1
        await conn.commit()
        await conn.run_sync(alembic_to("0004_integrations", down=True))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
        await conn.run_sync(alembic_to("0005_threads"))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
        assert await conn.run_sync(_thread_columns) == (None, False, 0, None, "")
