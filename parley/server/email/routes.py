"""HTTP routes for e-mail verification and password reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import EmailStr, StringConstraints

from parley.server.accounts.schemas import Password, Strict, UserPublic
from parley.server.accounts.service import user_public
from parley.server.deps import CurrentUser, SessionDep, StateDep, client_ip
from parley.server.email import service, templates

router = APIRouter(prefix="/service/api", tags=["email"])
Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class VerifyRequest(Strict):
    token: Token


class ForgotRequest(Strict):
    email: EmailStr


class ResetRequest(Strict):
    token: Token
    new_password: Password


def _language(request: Request) -> str:
    return templates.language_of(request.headers.get("accept-language"))


@router.post("/email/verify")
async def verify_email(body: VerifyRequest, session: SessionDep, state: StateDep) -> UserPublic:
    """Public: the link may be opened where its owner is not signed in."""
    user = await service.verify_email(session, token=body.token, now=state.clock())
    return user_public(user, own=True, online=state.hub.is_online(user.id))


@router.post("/email/verify/resend", status_code=202)
async def resend_verification(
    request: Request, me: CurrentUser, session: SessionDep, state: StateDep
) -> JSONResponse:
    state.mailer.check()
    await state.throttle.hit("forgot", me.user.email_key, detail="Too many e-mails, try later")
    await service.send_verification(
        session,
        state.mailer,
        user=me.user,
        base=state.settings.public_base,
        language=_language(request),
        now=state.clock(),
    )
    return JSONResponse({"detail": "A confirmation link is on its way"}, status_code=202)


@router.post("/password/forgot", status_code=202)
async def forgot_password(
    body: ForgotRequest, request: Request, session: SessionDep, state: StateDep
) -> JSONResponse:
    await service.forgot_password(
        session,
        state.mailer,
        state.throttle,
        email=str(body.email),
        client_ip=client_ip(request, state.settings),
        base=state.settings.public_base,
        language=_language(request),
        now=state.clock(),
    )
    return JSONResponse({"detail": service.FORGOT_DETAIL}, status_code=202)


@router.post("/password/reset", status_code=204)
async def reset_password(body: ResetRequest, session: SessionDep, state: StateDep) -> Response:
    await service.reset_password(
        session,
        state.broker,
        token=body.token,
        new_password=body.new_password,
        now=state.clock(),
    )
    return Response(status_code=204)
