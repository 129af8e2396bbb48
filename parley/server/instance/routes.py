"""HTTP routes for the instance-wide settings (admins)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from parley.config import Settings
from parley.server.accounts.schemas import Strict
from parley.server.deps import AdminContextDep, ContextDep, check_admin
from parley.server.instance import settings as instance

router = APIRouter(prefix="/service/api/admin", tags=["admin"])
Registration = Literal["open", "invite", "closed"]


Days = Annotated[float, Field(ge=0, le=36500, strict=True)]  # strict: true is not 1 day


class InstanceSettings(BaseModel):
    registration: Registration
    retention_days: float | None  # the admin's override; None: the environment's applies
    default_retention_days: float  # PARLEY_RETENTION_DAYS


class InstanceSettingsUpdate(Strict):
    registration: Registration | None = None
    retention_days: Days | None = None  # null: back to PARLEY_RETENTION_DAYS


@router.get("/settings")
async def get_settings(ctx: AdminContextDep) -> InstanceSettings:
    return await _public(ctx.session, ctx.state.settings)


@router.patch("/settings")
async def update_settings(body: InstanceSettingsUpdate, ctx: ContextDep) -> InstanceSettings:
    check_admin(ctx.me)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("registration", "") is None:
        del changes["registration"]  # not nullable: null leaves it as it is
    settings = ctx.state.settings
    await instance.write(ctx.session, settings, changes, admin_id=ctx.user_id, now=ctx.now())
    return await _public(ctx.session, settings)


async def _public(session: AsyncSession, settings: Settings) -> InstanceSettings:
    values = await instance.read_all(session, settings)
    return InstanceSettings(
        registration=values["registration"],
        retention_days=await instance.read_stored(session, "retention_days"),
        default_retention_days=settings.retention_days,
    )
