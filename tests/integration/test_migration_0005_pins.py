"""Revision 0005_pins on a database with messages: they become ordinary, unpinned,
unforwarded messages, as history shows them; down and up again."""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from parley.server.messages.history import Paging, load_page
from tests.integration.conftest import alembic_to


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
            " last_activity_at) VALUES (1, 'group', 'g', '', false, CURRENT_TIMESTAMP, 2,"
            " CURRENT_TIMESTAMP)"
        )
    )
    run(
        text(
            "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at)"
            " VALUES (:id, 1, :id, 1, :content, CURRENT_TIMESTAMP)"
        ),
        [{"id": 1, "content": "before pins"}, {"id": 2, "content": "and another"}],
    )


async def test_existing_messages_are_plain_messages(migration_engine: AsyncEngine) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0004_integrations"))
        await conn.run_sync(_seed)
        await conn.commit()
        await conn.run_sync(alembic_to("0005_pins"))
        await conn.commit()
    async with AsyncSession(migration_engine) as session:
        page = await load_page(session, chat_id=1, hidden=(), paging=Paging(limit=10))
    assert [m["content"] for m in page] == ["before pins", "and another"]
    for m in page:
        assert m["kind"] == "message" and m["pinned_at"] is None and m["pinned_by"] is None
        assert m["forwarded_from"] is None and m["notice"] is None
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0004_integrations", down=True))
        await conn.commit()
        kept = await conn.execute(text("SELECT content FROM messages ORDER BY seq"))
        assert list(kept.scalars()) == ["before pins", "and another"]
        await conn.run_sync(alembic_to("head"))
        await conn.commit()
        kinds = await conn.execute(text("SELECT kind FROM messages ORDER BY seq"))
        assert list(kinds.scalars()) == ["message", "message"]
