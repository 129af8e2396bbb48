"""The whole chain down to an empty database and up again, on both backends."""

from __future__ import annotations

from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import alembic_to


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_down_to_base_leaves_nothing_and_up_again_rebuilds_everything(
    migration_engine: AsyncEngine,
) -> None:
    async with migration_engine.connect() as conn:
        await conn.run_sync(alembic_to("head"))
        await conn.commit()
        built = await conn.run_sync(_tables)
        assert {"users", "chats", "messages", "memberships"} <= built
        # On SQLite, dropping `messages` fired the search triggers on their dropped table.
        await conn.run_sync(alembic_to("base", down=True))
        await conn.commit()
        assert await conn.run_sync(_tables) == {"alembic_version"}
        await conn.run_sync(alembic_to("head"))
        await conn.commit()
        assert await conn.run_sync(_tables) == built
