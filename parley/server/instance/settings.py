"""Instance-wide settings an admin changes at run time, kept in the database so that every
process reads the same: a JSON value per key, the environment giving the default.

Each setting is declared once in SETTINGS (its name, default from the Settings object and
check); `read_all` and `write` are the only ways in. A nullable setting written as None
goes back to the environment's value. Every change is audited ("settings.update").
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
from parley.server.audit import audit
from parley.server.db.models import InstanceSetting


@dataclass(frozen=True, slots=True)
class Declared:
    default: Callable[[Settings], Any]
    allowed: frozenset[Any] | None = None
    check: Callable[[Any], bool] | None = None
    nullable: bool = False  # None: back to the environment's value


def _is_days(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 36500


REGISTRATION_MODES = frozenset({"open", "invite", "closed"})
SETTINGS: dict[str, Declared] = {
    "registration": Declared(lambda s: s.registration, REGISTRATION_MODES),
    "retention_days": Declared(lambda s: s.retention_days, check=_is_days, nullable=True),
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


async def read_stored(session: AsyncSession, name: str) -> Any:
    """The value an admin stored, None when the environment's applies."""
    value = await session.scalar(select(InstanceSetting.value).where(InstanceSetting.key == name))
    return None if value is None else json.loads(value)


async def write(
    session: AsyncSession,
    settings: Settings,
    changes: Mapping[str, Any],
    *,
    now: datetime,
    admin_id: int | None = None,
) -> dict[str, Any]:
    """Stores `changes` (declared names only; each checked) and audits what changed; commits;
    returns every setting."""
    for name, value in changes.items():
        _check(name, value)
    before = await read_all(session, settings)
    stored = {name: await read_stored(session, name) for name in changes}
    for name, value in changes.items():
        await _store(session, name, value, now)
    after = await read_all(session, settings)
    changed = {  # values in effect; an override equal to the environment's is still a change
        n: {"from": before[n], "to": after[n]} for n, v in changes.items() if stored[n] != v
    }
    if changed:
        await audit(session, admin_id, "settings.update", "instance", None, changed, at=now)
    await session.commit()
    return after


def _check(name: str, value: Any) -> None:
    declared = SETTINGS.get(name)
    if declared is None:
        raise errors.ValidationFailed(f"Unknown setting {name!r}")
    if value is None and declared.nullable:
        return
    if declared.allowed is not None and value not in declared.allowed:
        raise errors.ValidationFailed(f"{name} must be one of {sorted(declared.allowed)}")
    if declared.check is not None and not declared.check(value):
        raise errors.ValidationFailed(f"{name} has an invalid value")


async def _store(session: AsyncSession, name: str, value: Any, now: datetime) -> None:
    """Upserts the row; None deletes it (the environment's value applies again)."""
    row = await session.get(InstanceSetting, name)
    if value is None:
        if row is not None:
            await session.delete(row)
            await session.flush()
        return
    encoded = json.dumps(value)
    if row is None:
        try:
            async with session.begin_nested():
                session.add(InstanceSetting(key=name, value=encoded, updated_at=now))
        except IntegrityError:  # written concurrently: update that row instead
            row = await session.get(InstanceSetting, name)
    if row is not None:
        row.value, row.updated_at = encoded, now
