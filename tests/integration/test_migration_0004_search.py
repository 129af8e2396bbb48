"""Revision 0004_search on a database with messages: each gets the stems of its words and
file names and is found by them (past the migration's chunk of 1,000); down and up again."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from parley.server.messages import search
from tests.integration.conftest import alembic_to

NOW = datetime(2026, 12, 1, tzinfo=UTC)
MESSAGES = 1100


def _seed(connection: Connection) -> None:
    run = connection.execute
    run(
        text(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash,"
            " display_name, bio, is_admin, created_at) VALUES"
            " (1, 'ann', 'ann', 'a@x.io', 'a@x.io', 'x', 'Ann', '', false, CURRENT_TIMESTAMP)"
        )
    )
    run(
        text(
            "INSERT INTO chats (id, type, title, description, is_public, created_at, last_seq,"
            " last_activity_at) VALUES (1, 'group', 'g', '', false, CURRENT_TIMESTAMP, :n,"
            " CURRENT_TIMESTAMP)"
        ),
        {"n": MESSAGES},
    )
    run(
        text(
            "INSERT INTO memberships (chat_id, user_id, role, joined_at, last_read_seq)"
            " VALUES (1, 1, 'owner', CURRENT_TIMESTAMP, 0)"
        )
    )
    contents = [f"filler number{n}" for n in range(MESSAGES - 3)] + [
        "The engineers were running tests",
        "Новые сообщения пришли, она написала",
        "the report is attached",
    ]
    run(
        text(
            "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at)"
            " VALUES (:id, 1, :id, 1, :content, CURRENT_TIMESTAMP)"
        ),
        [{"id": n + 1, "content": c} for n, c in enumerate(contents)],
    )
    run(
        text(
            "INSERT INTO attachments (id, chat_id, uploader_id, message_id, filename,"
            " content_type, size, is_image, storage_key, created_at) VALUES (1, 1, 1, :id,"
            " 'Budget_Summaries.xlsx', 'application/octet-stream', 3, false, 'k1',"
            " CURRENT_TIMESTAMP)"
        ),
        {"id": MESSAGES},
    )


async def _found(engine: AsyncEngine, q: str) -> list[str]:
    async with AsyncSession(engine) as session:
        found = await search.search_messages(
            session, user_id=1, q=q, chat_id=None, limit=10, now=NOW
        )
        return [m.content for m in found]


async def test_existing_messages_are_found_by_their_stems(migration_engine: AsyncEngine) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0003"))
        await conn.run_sync(_seed)
        await conn.commit()
        await conn.run_sync(alembic_to("0004_search"))
        await conn.commit()
        stored = (
            await conn.execute(
                text("SELECT search_text FROM messages WHERE id = :id"), {"id": 1098}
            )
        ).scalar_one()
        assert stored == "the engin were run test"
        await conn.run_sync(alembic_to("head"))  # searched by today's code (its columns)
        await conn.commit()
    assert await _found(migration_engine, "run engineer") == ["The engineers were running tests"]
    assert await _found(migration_engine, "сообщение написал") == [
        "Новые сообщения пришли, она написала"
    ]
    assert await _found(migration_engine, "budget summary") == ["the report is attached"]
    assert await _found(migration_engine, "number5 filler") == ["filler number5"]
    assert await _found(migration_engine, "number1096 filler") == ["filler number1096"]

    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0003", down=True))
        await conn.commit()
        # the index of before is back: content words, and inserts still indexed
        await conn.execute(
            text(
                "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at)"
                " VALUES (5000, 1, 5000, 1, 'added between', CURRENT_TIMESTAMP)"
            )
        )
        await conn.commit()
        await conn.run_sync(alembic_to("head"))
        await conn.commit()
    assert await _found(migration_engine, "running") == ["The engineers were running tests"]
    assert await _found(migration_engine, "add between") == ["added between"]
