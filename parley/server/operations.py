"""What the CLI does to an instance besides serving it: migrate, promote a user, make a
password reset link, export and import (each opens the database itself, migrated first)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from parley.clock import as_clock
from parley.config import Settings
from parley.server.accounts.service import promote_user as _promote
from parley.server.db.session import make_engine, make_sessionmaker, migrate
from parley.server.integrations import instance, slack
from parley.server.storage import make_storage


async def migrate_database(settings: Settings) -> None:
    engine = make_engine(settings.sqlalchemy_url)
    try:
        settings.make_data_dir()
        await migrate(engine, settings.data_dir if engine.dialect.name == "sqlite" else None)
    finally:
        await engine.dispose()


async def promote_user(settings: Settings, username: str) -> bool:
    await migrate_database(settings)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await _promote(session, username=username)
    finally:
        await engine.dispose()


async def password_reset_link(settings: Settings, username: str) -> str | None:
    """A one-time password reset link for `username` (`parley reset-password`), or None."""
    from parley.server.email.service import reset_link

    await migrate_database(settings)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await reset_link(
                session, username=username, base=settings.public_base, now=as_clock(None)()
            )
    finally:
        await engine.dispose()


async def export_instance(
    settings: Settings, out: Path, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, int]:
    """`parley export --out FILE`: the whole instance, migrated first."""
    await migrate_database(settings)
    engine, storage = make_engine(settings.sqlalchemy_url), make_storage(settings)
    try:
        return await instance.export_instance(engine, storage, out, progress)
    finally:
        await storage.close()
        await engine.dispose()


async def import_instance(
    settings: Settings, source: Path, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, int]:
    """`parley import FILE`: adds what this instance does not have yet."""
    await migrate_database(settings)
    engine, storage = make_engine(settings.sqlalchemy_url), make_storage(settings)
    try:
        return await instance.import_instance(engine, storage, source, progress)
    finally:
        await storage.close()
        await engine.dispose()


async def import_slack(
    settings: Settings, source: Path, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, int]:
    """`parley import-slack EXPORT.zip`: users, channels, messages, reactions, files."""
    await migrate_database(settings)
    engine, storage = make_engine(settings.sqlalchemy_url), make_storage(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            return await slack.import_slack(session, storage, source, progress)
    finally:
        await storage.close()
        await engine.dispose()
