"""Revision 0004_trust on a database with users, sessions and messages: columns added in
place (no table rebuild, so no cascade deletes on SQLite), new tables made; down and up."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from parley.security import hash_token
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
            "INSERT INTO refresh_tokens (session_id, token_hash, created_at)"
            " VALUES (1, :hash, CURRENT_TIMESTAMP)"
        ),
        {"hash": hash_token("rt_kept")},
    )
    connection.execute(
        text(
            "INSERT INTO chats (id, type, title, description, is_public, created_at, last_seq,"
            " last_activity_at) VALUES (1, 'group', 'T', '', false, CURRENT_TIMESTAMP, 1,"
            " CURRENT_TIMESTAMP)"
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


def _counts(connection: Connection) -> tuple[int, ...]:
    return tuple(
        int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in ("users", "sessions", "refresh_tokens", "memberships", "messages")
    )


async def test_upgrade_keeps_every_row_and_adds_defaults(migration_engine: AsyncEngine) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0003"))
        await conn.run_sync(_seed)
        await conn.commit()
        await conn.run_sync(alembic_to("0004_trust"))
        await conn.commit()
        assert await conn.run_sync(_counts) == (1, 1, 1, 1, 1)
        user = (
            await conn.execute(
                text("SELECT totp_enabled, totp_secret, deactivated_at FROM users WHERE id = 1")
            )
        ).one()
        assert (bool(user[0]), user[1], user[2]) == (False, None, None)
        session = (await conn.execute(text("SELECT ip, last_used_at FROM sessions"))).one()
        assert tuple(session) == ("", None)
        retention = (await conn.execute(text("SELECT retention_days FROM chats"))).scalar_one()
        assert retention is None
        for table in ("audit_entries", "recovery_codes", "reports"):
            count = await conn.execute(text(f"SELECT count(*) FROM {table}"))
            assert count.scalar_one() == 0
        await conn.run_sync(alembic_to("0003", down=True))
        await conn.commit()
        assert await conn.run_sync(_counts) == (1, 1, 1, 1, 1)
        await conn.run_sync(alembic_to("0004_trust"))
        await conn.commit()
        assert await conn.run_sync(_counts) == (1, 1, 1, 1, 1)
