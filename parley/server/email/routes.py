"""HTTP routes for e-mail verification and password reset."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import EmailStr, StringConstraints

from parley.server.accounts.schemas import Password, Strict, UserPublic
from parley.server.accounts.service import user_public
from parley.server.deps import NO_CONTENT, ContextDep, SessionDep, StateDep, client_ip
from parley.server.email import digest, service, templates

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
async def resend_verification(request: Request, ctx: ContextDep) -> JSONResponse:
    state, user = ctx.state, ctx.me.user
    state.mailer.check()
    await state.throttle.hit("forgot", user.email_key, detail="Too many e-mails, try later")
    await service.send_verification(
        ctx.session,
        state.mailer,
        user=user,
        base=state.settings.public_base,
        language=_language(request),
        now=ctx.now(),
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


@router.post("/password/reset", **NO_CONTENT)
async def reset_password(body: ResetRequest, session: SessionDep, state: StateDep) -> None:
    await service.reset_password(
        session, state.broker, token=body.token, new_password=body.new_password, now=state.clock()
    )


_UNSUBSCRIBE_PAGE = {
    "en": (
        "Unsubscribe from Parley e-mails",
        "Stop the e-mails about unread messages sent to this address?",
        "Unsubscribe",
        "Done: no more e-mails about unread messages. You can turn them back on in Parley's"
        " settings.",
    ),
    "ru": (
        "Отписка от писем Parley",
        "Больше не присылать на этот адрес письма о непрочитанных сообщениях?",
        "Отписаться",
        "Готово: писем о непрочитанных сообщениях больше не будет. Включить их снова можно в"
        " настройках Parley.",
    ),
}


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        f'<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">'
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )


@router.get("/email/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, token: Token) -> HTMLResponse:
    """Public. Opening the link only asks (RFC 8058: a GET changes nothing); the form's
    POST, like a mail client's one-click POST, unsubscribes."""
    title, question, action, _ = _UNSUBSCRIBE_PAGE[_language(request)]
    form = (
        f"<p>{escape(question)}</p>"
        f'<form method="post" action="?token={escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{escape(action)}</button></form>'
    )
    return _page(title, form)


@router.post("/email/unsubscribe", response_model=None)
async def unsubscribe(
    request: Request, token: Token, session: SessionDep, state: StateDep
) -> HTMLResponse | JSONResponse:
    """Public, one click (RFC 8058): turns `email_notifications` off. 400 `token_invalid`
    for a token the server did not sign."""
    await digest.unsubscribe(session, secret=state.settings.jwt_key(), token=token)
    title, _, _, done = _UNSUBSCRIBE_PAGE[_language(request)]
    if "text/html" in request.headers.get("accept", ""):
        return _page(title, f"<p>{escape(done)}</p>")
    return JSONResponse({"detail": done, "email_notifications": False})
