"""Revision 0005_reach on a database with users, sessions and messages: the users table
gains the digest columns in place (nothing that hangs on a user is lost), every account's
digest cursor starts at the newest message (no digest about old unread messages after an
upgrade); down and up again."""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import alembic_to
from tests.integration.test_migration_0004_integrations import _counts, _seed


def _add_messages(connection: Connection) -> None:
    for n in (2, 3):
        connection.execute(
            text(
                "INSERT INTO messages (id, chat_id, seq, sender_id, content, created_at)"
                f" VALUES ({n}, 1, {n}, 1, 'old', CURRENT_TIMESTAMP)"
            )
        )


def _user(connection: Connection) -> tuple[object, ...]:
    row = connection.execute(
        text(
            "SELECT email_notifications, language, digest_sent_at, digest_after_id"
            " FROM users WHERE id = 1"
        )
    ).one()
    return bool(row[0]), row[1], row[2], int(row[3])


async def test_users_gain_digest_columns_with_the_cursor_at_the_newest_message(
    migration_engine: AsyncEngine,
) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0004_integrations"))
        await conn.run_sync(_seed)
        await conn.run_sync(_add_messages)
        await conn.commit()
        before = await conn.run_sync(_counts)
        assert before == {"users": 1, "sessions": 1, "memberships": 1, "messages": 3}
        await conn.run_sync(alembic_to("0005_reach"))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
        assert await conn.run_sync(_user) == (True, "en", None, 3)
        await conn.run_sync(alembic_to("0004_integrations", down=True))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
        await conn.run_sync(alembic_to("0005_reach"))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
