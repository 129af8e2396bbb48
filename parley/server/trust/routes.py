"""HTTP routes for two-factor sign-in and one's own login sessions."""

from __future__ import annotations

from fastapi import APIRouter, Response

from parley.server.accounts import twofactor
from parley.server.deps import CurrentUser, IdPath, SessionDep, StateDep
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
async def enable(
    body: TwoFactorEnable, me: CurrentUser, session: SessionDep, state: StateDep
) -> RecoveryCodes:
    codes = await twofactor.enable_two_factor(
        session, user=me.user, code=body.code, now=state.clock()
    )
    return RecoveryCodes(recovery_codes=codes)


@router.post("/2fa/disable", status_code=204)
async def disable(
    body: TwoFactorDisable, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await twofactor.disable_two_factor(
        session, user=me.user, password=body.password, code=body.code, now=state.clock()
    )
    return Response(status_code=204)


@router.get("/sessions")
async def list_sessions(
    me: CurrentUser, session: SessionDep, state: StateDep
) -> list[SessionPublic]:
    rows = await sessions.list_sessions(session, user_id=me.id, now=state.clock())
    return [
        SessionPublic(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            user_agent=row.user_agent,
            device=sessions.device_of(row.user_agent),
            ip=row.ip,
            current=row.id == me.session_id,
        )
        for row in rows
    ]


@router.delete("/sessions/{session_id}", status_code=204)
async def end_session(
    session_id: IdPath, me: CurrentUser, session: SessionDep, state: StateDep
) -> Response:
    await sessions.end_session(
        session, state.broker, user_id=me.id, session_id=session_id, now=state.clock()
    )
    return Response(status_code=204)


@router.delete("/sessions", status_code=204)
async def end_other_sessions(me: CurrentUser, session: SessionDep, state: StateDep) -> Response:
    await sessions.end_other_sessions(
        session, state.broker, user_id=me.id, keep=me.session_id, now=state.clock()
    )
    return Response(status_code=204)
