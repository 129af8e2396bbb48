"""Instance-wide settings an admin changes at run time, kept in the database so that every
process reads the same: a JSON value per key, the environment giving the default.

Each setting is declared once in SETTINGS (its name, default from the Settings object and
check); `read_all` and `write` are the only ways in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.config import Settings
from parley.server.db.models import InstanceSetting


@dataclass(frozen=True, slots=True)
class Declared:
    default: Callable[[Settings], Any]
    allowed: frozenset[Any] | None = None


REGISTRATION_MODES = frozenset({"open", "invite", "closed"})
SETTINGS: dict[str, Declared] = {
    "registration": Declared(lambda s: s.registration, REGISTRATION_MODES),
}


async def read_all(session: AsyncSession, settings: Settings) -> dict[str, Any]:
    """Every declared setting: the stored value, else the environment's."""
    values = {name: declared.default(settings) for name, declared in SETTINGS.items()}
    rows = await session.execute(
        select(InstanceSetting.key, InstanceSetting.value).where(
            InstanceSetting.key.in_(list(SETTINGS))
        )
    )
    for key, value in rows:
        values[key] = json.loads(value)
    return values


async def read(session: AsyncSession, settings: Settings, name: str) -> Any:
    return (await read_all(session, settings))[name]


async def write(
    session: AsyncSession, settings: Settings, changes: Mapping[str, Any], *, now: datetime
) -> dict[str, Any]:
    """Stores `changes` (declared names only; each checked); commits; returns every setting."""
    for name, value in changes.items():
        declared = SETTINGS.get(name)
        if declared is None:
            raise errors.ValidationFailed(f"Unknown setting {name!r}")
        if declared.allowed is not None and value not in declared.allowed:
            raise errors.ValidationFailed(f"{name} must be one of {sorted(declared.allowed)}")
        encoded = json.dumps(value)
        row = await session.get(InstanceSetting, name)
        if row is None:
            try:
                async with session.begin_nested():
                    session.add(InstanceSetting(key=name, value=encoded, updated_at=now))
            except IntegrityError:  # written concurrently: update that row instead
                row = await session.get(InstanceSetting, name)
        if row is not None:
            row.value, row.updated_at = encoded, now
    await session.commit()
    return await read_all(session, settings)
