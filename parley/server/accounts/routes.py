"""HTTP routes for accounts, profile and users: parse, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.credentials import ACCESS_COOKIE
from parley.server import images
from parley.server.accounts import avatars, profile, service, twofactor
from parley.server.accounts.schemas import (
    Login,
    PasswordChange,
    ProfileUpdate,
    RefreshRequest,
    Register,
    TokenPair,
    UserPublic,
)
from parley.server.actor import Actor
from parley.server.chats.general import ensure_general
from parley.server.chats.service import publish_chat_updated
from parley.server.db.models import User
from parley.server.deps import (
    NO_CONTENT,
    REFRESH_COOKIE,
    AppState,
    Context,
    ContextDep,
    CurrentUser,
    IdPath,
    PageDep,
    SessionDep,
    StateDep,
    check_origin,
    client_ip,
)
from parley.server.email import service as email
from parley.server.email import templates
from parley.server.instance import settings as instance
from parley.server.invites import service as invites
from parley.server.text import Plain
from parley.server.trust.schemas import LoginSecondStep, MfaRequired
from parley.server.uploads import read_file_part

router = APIRouter(prefix="/service/api", tags=["accounts"])
REFRESH_PATH = "/service/api"


async def _client(request: Request, state: StateDep) -> service.Client:
    ip = client_ip(request, state.settings)
    return service.Client(ip, request.headers.get("user-agent", ""))


ClientDep = Annotated[service.Client, Depends(_client)]


def _answer(state: AppState, response: Response, tokens: service.Tokens) -> TokenPair:
    """The token pair in the body, and as HttpOnly SameSite=Strict cookies for browsers."""
    secure = state.settings.cookie_secure
    response.set_cookie(
        ACCESS_COOKIE,
        tokens.access_token,
        max_age=tokens.expires_in,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=state.settings.refresh_ttl,
        httponly=True,
        samesite="strict",
        secure=secure,
        path=REFRESH_PATH,
    )
    return TokenPair(
        user=service.user_public(tokens.user, own=True),
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type="bearer",
        expires_in=tokens.expires_in,
    )


def _clear_cookies(response: Response) -> None:
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH)


@router.post("/register", status_code=201)
async def register(
    body: Register,
    request: Request,
    response: Response,
    session: SessionDep,
    state: StateDep,
    client: ClientDep,
) -> TokenPair:
    now = state.clock()
    mode = await instance.read(session, state.settings, "registration")
    invite = await invites.check_registration(session, mode=mode, code=body.invite, now=now)
    await session.commit()  # no transaction held across the password's hashing

    async def use_invite(session: AsyncSession, _user: User) -> None:
        if invite is not None:
            await invites.use_for_registration(session, invite, now=now)

    user = await service.create_user(
        session,
        username=body.username,
        email=str(body.email),
        password=body.password,
        display_name=body.display_name,
        on_created=use_invite,
    )
    if invite is not None:
        await invites.join_invited_chats(
            session,
            state.broker,
            Actor(user.id, now),
            invite=invite,
            max_chats=state.settings.max_chats_per_user,
        )
    # e-mails (the verification, later digests) in the language of the browser it came from
    user.language = templates.language_of(request.headers.get("accept-language"))
    await session.commit()
    await email.send_verification(
        session,
        state.mailer,
        user=user,
        base=state.settings.public_base,
        language=user.language,
        now=now,
    )
    # The new member is in `general`: its members see the count grow as it happens.
    general = await ensure_general(session)
    await publish_chat_updated(session, state.broker, general, now=state.clock())
    tokens = await service.start_session(session, state.issuer, user=user, client=client)
    return _answer(state, response, tokens)


@router.post("/login")
async def login(
    body: Login, response: Response, session: SessionDep, state: StateDep, client: ClientDep
) -> TokenPair | MfaRequired:
    """With two-factor sign-in on, a right password answers `mfa_required` and no tokens."""
    tokens = await service.login(
        session,
        state.issuer,
        state.throttle,
        username=body.username,
        password=body.password,
        client=client,
    )
    if isinstance(tokens, service.Challenge):
        return MfaRequired(mfa_token=tokens.mfa_token, expires_in=tokens.expires_in)
    return _answer(state, response, tokens)


@router.post("/login/2fa")
async def login_second_step(
    body: LoginSecondStep,
    response: Response,
    session: SessionDep,
    state: StateDep,
    client: ClientDep,
) -> TokenPair:
    """The code (or a recovery code) after `mfa_required`: each works once."""
    tokens = await twofactor.complete_login(
        session,
        state.issuer,
        state.throttle,
        mfa_token=body.mfa_token,
        code=body.code,
        recovery_code=body.recovery_code,
        client=client,
    )
    return _answer(state, response, tokens)


@router.post("/refresh")
async def refresh(
    request: Request,
    response: Response,
    session: SessionDep,
    state: StateDep,
    body: RefreshRequest | None = None,
) -> TokenPair:
    token = body.refresh_token if body and body.refresh_token else None
    if token is None:
        token = request.cookies.get(REFRESH_COOKIE)
        if token:
            check_origin(request, state.settings)
    if not token:
        raise errors.Unauthorized("No refresh token")
    ip = client_ip(request, state.settings)
    tokens = await service.refresh(session, state.issuer, state.broker, token=token, ip=ip)
    return _answer(state, response, tokens)


@router.post("/logout", **NO_CONTENT)
async def logout(ctx: ContextDep, response: Response) -> None:
    await service.revoke_sessions(
        ctx.session, ctx.broker, user_id=ctx.user_id, ids=[ctx.me.session_id], now=ctx.now()
    )
    _clear_cookies(response)


@router.post("/password", **NO_CONTENT)
async def change_password(body: PasswordChange, ctx: ContextDep) -> None:
    await service.change_password(
        ctx.session,
        ctx.broker,
        user=ctx.me.user,
        session_id=ctx.me.session_id,
        current_password=body.current_password,
        new_password=body.new_password,
        now=ctx.now(),
    )


@router.get("/profile")
async def get_profile(me: CurrentUser, state: StateDep) -> UserPublic:
    return service.user_public(me.user, own=True, online=state.hub.is_online(me.id))


@router.patch("/profile")
async def update_profile(body: ProfileUpdate, request: Request, ctx: ContextDep) -> UserPublic:
    state = ctx.state
    old_email = ctx.me.user.email_key
    user = await profile.update_profile(
        ctx.session,
        ctx.broker,
        user=ctx.me.user,
        display_name=body.display_name,
        bio=body.bio,
        email=str(body.email) if body.email else None,
        max_group=state.settings.presence_max_group,
        mind=profile.MindUpdate(
            fields=frozenset(body.model_fields_set),
            status=body.status,
            dnd_until=body.dnd_until,
            share_read_receipts=body.share_read_receipts,
            now=ctx.now(),
        ),
        email_notifications=body.email_notifications,
        language=body.language,
    )
    if user.email_key != old_email:
        await email.send_verification(
            ctx.session,
            state.mailer,
            user=user,
            base=state.settings.public_base,
            language=templates.language_of(request.headers.get("accept-language")),
            now=ctx.now(),
        )
    return _own(ctx, user)


def _own(ctx: Context, user: User) -> UserPublic:
    """The caller's own profile."""
    return service.user_public(user, own=True, online=ctx.state.hub.is_online(ctx.user_id))


@router.get("/users")
async def list_users(
    ctx: ContextDep, page: PageDep, q: Annotated[Plain, Query(max_length=64)] = ""
) -> list[UserPublic]:
    users = await service.list_users(ctx.session, q=q.strip(), limit=page.limit, offset=page.offset)
    return [_user(ctx, u) for u in users]


@router.get("/users/{user_id}")
async def get_user(user_id: IdPath, ctx: ContextDep) -> UserPublic:
    user = await service.access_user(ctx.session, user_id)
    public = _user(ctx, user)
    public.avatar_data_url = await ctx.state.avatar_urls.of(user)
    return public


def _user(ctx: Context, user: User) -> UserPublic:
    """A user as the caller sees it (the e-mail only its own, or to an admin)."""
    own = service.sees_email(ctx.me.user, user.id)
    return service.user_public(user, own=own, online=ctx.state.hub.is_online(user.id))


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.put("/profile/avatar", openapi_extra=UPLOAD_BODY)
async def put_avatar(request: Request, ctx: ContextDep) -> UserPublic:
    state = ctx.state
    await ctx.session.commit()  # release the connection while the upload streams in
    limit = state.settings.max_avatar_bytes
    part = await read_file_part(request, max_bytes=limit)
    data = await avatars.read_capped(part.chunks, max_bytes=limit)
    user = await avatars.set_avatar(
        ctx.session,
        state.storage,
        state.avatar_urls,
        ctx.broker,
        user_id=ctx.user_id,
        data=data,
        max_group=state.settings.presence_max_group,
        max_bytes=limit,
        now=ctx.now(),
    )
    return _own(ctx, user)


@router.delete("/profile/avatar", **NO_CONTENT)
async def delete_avatar(ctx: ContextDep) -> None:
    state = ctx.state
    await avatars.delete_avatar(
        ctx.session,
        state.storage,
        state.avatar_urls,
        ctx.broker,
        user_id=ctx.user_id,
        max_group=state.settings.presence_max_group,
    )


@router.get("/users/{user_id}/avatar", response_class=StreamingResponse)
async def get_avatar(
    user_id: IdPath, _me: CurrentUser, session: SessionDep, state: StateDep
) -> StreamingResponse:
    chunks = await avatars.open_avatar(session, state.storage, user_id=user_id)
    await session.commit()  # end the transaction before streaming (SQLite: the write lock)
    # The URL carries a version (?v=), so a new avatar is a new URL: cache it for a day.
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"}
    return StreamingResponse(chunks, media_type=images.AVATAR_CONTENT_TYPE, headers=headers)
