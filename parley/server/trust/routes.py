"""HTTP routes for two-factor sign-in and one's own login sessions."""

from __future__ import annotations

from fastapi import APIRouter

from parley.server.accounts import twofactor
from parley.server.deps import NO_CONTENT, ContextDep, CurrentUser, IdPath, SessionDep
from parley.server.trust import sessions
from parley.server.trust.schemas import (
    RecoveryCodes,
    SessionPublic,
    TwoFactorDisable,
    TwoFactorEnable,
    TwoFactorSetup,
)

router = APIRouter(prefix="/service/api", tags=["trust"])


@router.post("/2fa/setup")
async def setup(me: CurrentUser, session: SessionDep) -> TwoFactorSetup:
    made = await twofactor.setup_two_factor(session, user=me.user)
    return TwoFactorSetup(
        secret=made.secret, otpauth_uri=made.otpauth_uri, qr_data_url=made.qr_data_url
    )


@router.post("/2fa/enable")
async def enable(body: TwoFactorEnable, ctx: ContextDep) -> RecoveryCodes:
    codes = await twofactor.enable_two_factor(
        ctx.session, user=ctx.me.user, code=body.code, now=ctx.now()
    )
    return RecoveryCodes(recovery_codes=codes)


@router.post("/2fa/disable", **NO_CONTENT)
async def disable(body: TwoFactorDisable, ctx: ContextDep) -> None:
    await twofactor.disable_two_factor(
        ctx.session, user=ctx.me.user, password=body.password, code=body.code, now=ctx.now()
    )


@router.get("/sessions")
async def list_sessions(ctx: ContextDep) -> list[SessionPublic]:
    rows = await sessions.list_sessions(ctx.session, ctx.actor)
    return [
        SessionPublic(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            user_agent=row.user_agent,
            device=sessions.device_of(row.user_agent),
            ip=row.ip,
            current=row.id == ctx.me.session_id,
        )
        for row in rows
    ]


@router.delete("/sessions/{session_id}", **NO_CONTENT)
async def end_session(session_id: IdPath, ctx: ContextDep) -> None:
    await sessions.end_session(ctx.session, ctx.broker, ctx.actor, session_id=session_id)


@router.delete("/sessions", **NO_CONTENT)
async def end_other_sessions(ctx: ContextDep) -> None:
    await sessions.end_other_sessions(ctx.session, ctx.broker, ctx.actor, keep=ctx.me.session_id)
