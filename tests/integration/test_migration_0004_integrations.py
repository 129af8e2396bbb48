"""Revision 0004_integrations on a database with users, sessions and messages: the users
table gains `is_bot` (false) and `owner_id` in place, nothing that hangs on a user is
lost (a rebuild of `users` on SQLite would cascade deletes); down and up again."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.server.db.models import UTCDateTime
from tests.integration.conftest import alembic_to


def _seed(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash,"
            " display_name, bio, is_admin, created_at) VALUES"
            " (1, 'ann', 'ann', 'a@x.io', 'a@x.io', 'x', 'Ann', '', false, CURRENT_TIMESTAMP)"
        )
    )
    connection.execute(
        text(
            "INSERT INTO sessions (id, sid, user_id, created_at, expires_at, user_agent)"
            " VALUES (1, :sid, 1, CURRENT_TIMESTAMP, :expires, 'old')"
        ).bindparams(bindparam("expires", type_=UTCDateTime())),
        {"sid": "ab" * 16, "expires": datetime(2099, 1, 1, tzinfo=UTC)},
    )
    connection.execute(
        text(
            "INSERT INTO chats (id, type, title, description, is_public, created_by, created_at,"
            " last_seq, last_activity_at) VALUES (1, 'group', 'T', '', false, 1,"
            " CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP)"
        )
    )
    connection.execute(
        text(
            "INSERT INTO memberships (chat_id, user_id, role, joined_at, last_read_seq)"
            " VALUES (1, 1, 'owner', CURRENT_TIMESTAMP, 0)"
        )
    )
    connection.execute(
        text(
            "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at)"
            " VALUES (1, 1, 1, 1, 'kept', CURRENT_TIMESTAMP)"
        )
    )


def _counts(connection: Connection) -> dict[str, int]:
    return {
        table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in ("users", "sessions", "memberships", "messages")
    }


def _user(connection: Connection) -> tuple[object, object]:
    row = connection.execute(text("SELECT is_bot, owner_id FROM users WHERE id = 1")).one()
    return bool(row[0]), row[1]


async def test_users_gain_bot_columns_and_lose_nothing(migration_engine: AsyncEngine) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0003"))
        await conn.run_sync(_seed)
        await conn.commit()
        before = await conn.run_sync(_counts)
        assert before == {"users": 1, "sessions": 1, "memberships": 1, "messages": 1}
        await conn.run_sync(alembic_to("0004_integrations"))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
        assert await conn.run_sync(_user) == (False, None)
        await conn.run_sync(alembic_to("0003", down=True))
        await conn.commit()
        await conn.run_sync(alembic_to("0004_integrations"))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
