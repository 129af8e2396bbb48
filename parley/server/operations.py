"""What the CLI does to an instance besides serving it: migrate, promote a user, make a
password reset link, export and import (each opens the database itself, migrated first)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from parley.clock import as_clock
from parley.config import Settings
from parley.server.accounts.service import promote_user as _promote
from parley.server.db.session import make_engine, make_sessionmaker, migrate
from parley.server.integrations import instance, slack
from parley.server.storage import Storage, make_storage

Progress = Callable[[str, int, int], None] | None


async def migrate_database(settings: Settings) -> None:
    engine = make_engine(settings.sqlalchemy_url)
    try:
        settings.make_data_dir()
        await migrate(engine, settings.data_dir if engine.dialect.name == "sqlite" else None)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _migrated(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The instance's database, migrated first; disposed of on the way out."""
    await migrate_database(settings)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def _storage(settings: Settings) -> AsyncIterator[Storage]:
    storage = make_storage(settings)
    try:
        yield storage
    finally:
        await storage.close()


async def promote_user(settings: Settings, username: str) -> bool:
    async with _migrated(settings) as engine, make_sessionmaker(engine)() as session:
        return await _promote(session, username=username)


async def password_reset_link(settings: Settings, username: str) -> str | None:
    """A one-time password reset link for `username` (`parley reset-password`), or None."""
    from parley.server.email.service import reset_link

    async with _migrated(settings) as engine, make_sessionmaker(engine)() as session:
        return await reset_link(
            session, username=username, base=settings.public_base, now=as_clock(None)()
        )


async def export_instance(
    settings: Settings, out: Path, progress: Progress = None
) -> dict[str, int]:
    """`parley export --out FILE`: the whole instance, migrated first."""
    async with _migrated(settings) as engine, _storage(settings) as storage:
        return await instance.export_instance(engine, storage, out, progress)


async def import_instance(
    settings: Settings, source: Path, progress: Progress = None
) -> dict[str, int]:
    """`parley import FILE`: adds what this instance does not have yet."""
    async with _migrated(settings) as engine, _storage(settings) as storage:
        return await instance.import_instance(engine, storage, source, progress)


async def import_slack(
    settings: Settings, source: Path, progress: Progress = None
) -> dict[str, int]:
    """`parley import-slack EXPORT.zip`: users, channels, messages, reactions, files."""
    async with (
        _migrated(settings) as engine,
        _storage(settings) as storage,
        make_sessionmaker(engine)() as session,
    ):
        return await slack.import_slack(session, storage, source, progress)
