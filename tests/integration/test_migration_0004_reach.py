"""Revision 0004_reach: its tables and the users' new column come and go without touching
the rows already there (nothing rebuilt, so nothing cascades on SQLite)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import alembic_to

REACH_TABLES = {"instance_settings", "invites", "email_tokens", "push_subscriptions"}


def _seed(conn: Connection) -> None:
    conn.execute(
        text(
            "INSERT INTO users (id, username, username_key, email, email_key, password_hash,"
            " display_name, bio, is_admin, created_at) VALUES (1, 'ann', 'ann', 'a@example.com',"
            " 'a@example.com', 'x', 'Ann', '', false, CURRENT_TIMESTAMP)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO sessions (id, sid, user_id, created_at, expires_at, user_agent)"
            " VALUES (1, 'ab', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, '')"
        )
    )


def _shape(conn: Connection) -> tuple[set[str], set[str], int]:
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names()) & REACH_TABLES
    columns = {c["name"] for c in inspector.get_columns("users")}
    sessions = conn.execute(text("SELECT count(*) FROM sessions")).scalar_one()
    return tables, columns, sessions


async def test_upgrade_and_downgrade_keep_the_data(migration_engine: AsyncEngine) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0003"))
        await conn.run_sync(_seed)
        await conn.commit()
        await conn.run_sync(alembic_to("0004_reach"))
        await conn.commit()
        tables, columns, sessions = await conn.run_sync(_shape)
        assert tables == REACH_TABLES and "email_verified_at" in columns and sessions == 1
        await conn.run_sync(alembic_to("0003", down=True))
        await conn.commit()
        tables, columns, sessions = await conn.run_sync(_shape)
        assert tables == set() and "email_verified_at" not in columns and sessions == 1
