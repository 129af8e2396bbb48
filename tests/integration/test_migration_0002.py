"""Revision 0002 on a database that already has messages: up, down and up again."""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import alembic_to


def _found(connection: Connection, word: str) -> bool:
    if connection.dialect.name == "sqlite":
        query = "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH :q"
    else:
        query = "SELECT count(*) FROM messages WHERE search_vector @@ to_tsquery('simple', :q)"
    return bool(connection.execute(text(query), {"q": word}).scalar_one())


async def test_upgrade_keeps_messages_searchable_and_downgrade_undoes_it(
    migration_engine: AsyncEngine,
) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0001"))
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
        await conn.run_sync(alembic_to("0002"))
        await conn.commit()
        assert await conn.run_sync(_found, "setup")  # the path's words, on both databases
        assert await conn.run_sync(_found, "docs")
        await conn.execute(
            text("INSERT INTO message_mentions VALUES (1, 1, 1, 1)")  # the table exists
        )
        await conn.execute(text("UPDATE memberships SET muted_until = NULL"))
        await conn.commit()
        await conn.run_sync(alembic_to("0001", down=True))
        await conn.commit()
        assert await conn.run_sync(_found, "docs")
        await conn.run_sync(alembic_to("0002"))
        await conn.commit()
        assert await conn.run_sync(_found, "setup")
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert version == [("0002",)]
