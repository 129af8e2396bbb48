"""Fixtures shared by the chat, message and WebSocket tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from argon2 import PasswordHasher, profiles
from sqlalchemy import Connection, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from parley import security
from parley.server.db.models import Chat, Message
from parley.server.db.session import _alembic_config, make_engine
from tests.conftest import Running, no_cookies
from tests.factories import Account, make_group, make_user

CROWD = 520


@pytest.fixture
def cheap_password_hashing() -> Iterator[None]:
    """For tests that register many users and never test passwords: hash them cheaply."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(security, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
        yield


@dataclass
class Crowded:
    owner: Account
    member: Account
    chat: dict[str, Any]
    count: int


@pytest.fixture(scope="session")
async def crowded(live: Running) -> AsyncIterator[Crowded]:
    """A group of two whose owner wrote CROWD messages, seq 1..CROWD ("m1", "m2", ...).

    The rows are inserted in bulk: sending them one by one over HTTP would take most of
    the suite's time, and the tests that use them only read.
    """
    async with httpx.AsyncClient(base_url=live.base, timeout=20, cookies=no_cookies()) as http:
        owner, member = await make_user(http), await make_user(http)
        chat = await make_group(http, owner, member, title="Crowded")
    start = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        {
            "chat_id": chat["id"],
            "seq": seq,
            "sender_id": owner.id,
            "content": f"m{seq}",
            "created_at": start + timedelta(seconds=seq),
        }
        for seq in range(1, CROWD + 1)
    ]
    async with live.state.sessions() as session:
        await session.execute(insert(Message), rows)
        await session.execute(update(Chat).where(Chat.id == chat["id"]).values(last_seq=CROWD))
        await session.commit()
    yield Crowded(owner, member, chat, CROWD)


@pytest.fixture
async def migration_engine(database_url: str | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A fresh, empty database of the backend under test, for a migration's test."""
    if database_url is None:
        made = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        yield made
        await made.dispose()
        return
    from tests.conftest import PG_DSN, _create_database, _drop_database

    name = "parley_m_" + os.urandom(4).hex()
    await _create_database(name)
    made = make_engine(
        f"{PG_DSN.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    )
    yield made
    await made.dispose()
    await _drop_database(name)


def alembic_to(revision: str, *, down: bool = False) -> Callable[[Connection], None]:
    """For `conn.run_sync`: upgrade (or downgrade) the connection's database to `revision`."""

    def run(connection: Connection) -> None:
        config = _alembic_config(connection)
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    return run
