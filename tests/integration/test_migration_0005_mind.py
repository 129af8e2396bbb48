"""Revision 0005_mind on a database with users, chats, memberships and messages: users
gain status, dnd and `share_read_receipts` (true), memberships gain `notify` and the draft
in place (no rebuild: nothing that hangs on them is lost), `scheduled_messages` appears;
down and up again."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import alembic_to
from tests.integration.test_migration_0004_integrations import _counts, _seed


def _mind(connection: Connection) -> tuple[object, ...]:
    user = connection.execute(
        text("SELECT status_text, dnd_until, share_read_receipts FROM users WHERE id = 1")
    ).one()
    member = connection.execute(
        text("SELECT notify, draft, last_read_seq FROM memberships WHERE user_id = 1")
    ).one()
    return user[0], user[1], bool(user[2]), member[0], member[1], member[2]


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_mind_columns_are_added_in_place(migration_engine: AsyncEngine) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("0003"))
        await conn.run_sync(_seed)
        await conn.commit()
        await conn.run_sync(alembic_to("0004_integrations"))
        await conn.commit()
        before = await conn.run_sync(_counts)
        await conn.run_sync(alembic_to("0005_mind"))
        await conn.commit()
        assert await conn.run_sync(_counts) == before
        assert await conn.run_sync(_mind) == (None, None, True, None, None, 0)
        assert "scheduled_messages" in await conn.run_sync(_tables)
        await conn.run_sync(alembic_to("0004_integrations", down=True))
        await conn.commit()
        assert "scheduled_messages" not in await conn.run_sync(_tables)
        assert await conn.run_sync(_counts) == before
        await conn.run_sync(alembic_to("0005_mind"))
        await conn.commit()
        assert await conn.run_sync(_mind) == (None, None, True, None, None, 0)
