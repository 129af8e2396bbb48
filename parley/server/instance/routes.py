"""HTTP routes for the instance-wide settings (admins)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from parley import errors
from parley.server.accounts.schemas import Strict
from parley.server.deps import CurrentUser, Principal, SessionDep, StateDep
from parley.server.instance import settings as instance

router = APIRouter(prefix="/service/api/admin", tags=["admin"])
Registration = Literal["open", "invite", "closed"]


class InstanceSettings(BaseModel):
    registration: Registration


class InstanceSettingsUpdate(Strict):
    registration: Registration | None = None


def require_admin(me: Principal) -> None:
    if not me.user.is_admin:
        raise errors.Forbidden("Admins only", code="admin_required")


@router.get("/settings")
async def get_settings(me: CurrentUser, session: SessionDep, state: StateDep) -> InstanceSettings:
    require_admin(me)
    return InstanceSettings(**await instance.read_all(session, state.settings))


@router.patch("/settings")
async def update_settings(
    body: InstanceSettingsUpdate, me: CurrentUser, session: SessionDep, state: StateDep
) -> InstanceSettings:
    require_admin(me)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    values = await instance.write(session, state.settings, changes, now=state.clock())
    return InstanceSettings(**values)
