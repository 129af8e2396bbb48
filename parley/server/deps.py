"""The FastAPI dependencies built on the server's state (SessionDep, CurrentUser, StateDep,
ContextDep, PageDep) and the answers routes share (an empty 204, a 201 or 200 create)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Final, TypeVar

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from parley import errors
from parley.clientip import is_ip, is_proxy, real_ip
from parley.config import Settings
from parley.credentials import UNSAFE_METHODS, TokenSource, find_credentials
from parley.security import TokenError, origin_matches
from parley.server.accounts.schemas import MAX_ID
from parley.server.actor import Actor
from parley.server.db.models import Ban, User
from parley.server.db.models import Session as LoginSession
from parley.server.realtime.broker import Broker
from parley.server.state import AppState as AppState

IdPath = Annotated[int, Path(gt=0, le=MAX_ID)]
OptionalId = Annotated[int | None, Query(gt=0, le=MAX_ID)]
SeqQuery = Annotated[int | None, Query(ge=0, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=MAX_ID)]
MAX_PAGE = 200  # a larger `limit` is served as this many

# A 204 route's decorator arguments: its handler returns None and the answer has no body
# and no content type (FastAPI's default JSONResponse would still name `application/json`).
NO_CONTENT: Final[Mapping[str, Any]] = MappingProxyType(
    {"status_code": 204, "response_class": Response}
)
REFRESH_COOKIE = "parley_refresh"
log = logging.getLogger("parley.server")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: the user row and the login session it came with."""

    user: User
    session_id: int
    # The user's ban as the send checks keep it: False without one, else when it ended
    # (a ban in force refuses the login before a Principal exists).
    ban: datetime | bool | None = False

    @property
    def id(self) -> int:
        return self.user.id


def get_state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.parley
    return state


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A reading session for GET and HEAD, a writing one otherwise.

    SessionDep closes it when the handler returns, before the response is sent: a client
    that does not read its response holds no transaction.
    """
    state = get_state(request)
    sessions = state.sessions if request.method in UNSAFE_METHODS else state.reads
    async with sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def client_ip(conn: HTTPConnection, settings: Settings) -> str:
    """The caller's address: the peer, or the X-Real-IP that a local gateway (or a proxy in
    PARLEY_TRUSTED_PROXIES) put there for the real client."""
    peer = conn.client.host if conn.client else "unknown"
    forwarded = conn.headers.get("x-real-ip")
    if (forwarded or "x-forwarded-for" in conn.headers) and not is_proxy(
        peer, settings.trusted_proxies
    ):
        _warn_untrusted_proxy(get_state(conn), peer)
    return real_ip(peer, forwarded, settings.trusted_proxies)


def _warn_untrusted_proxy(state: AppState, peer: str) -> None:
    """Once per process: a proxy this server does not trust makes all its clients one
    address, so one client's failed logins throttle everyone's."""
    if state.warned_untrusted_proxy or not is_ip(peer):
        return
    state.warned_untrusted_proxy = True
    log.warning(
        "forwarded client address from %s ignored: the peer is not in PARLEY_TRUSTED_PROXIES,"
        " so every client behind it counts as one address for per-IP limits (login"
        " throttling included); add the gateways' network to PARLEY_TRUSTED_PROXIES",
        peer,
    )


def read_token(conn: HTTPConnection, *, allow_query: bool = False) -> tuple[str | None, bool]:
    """The bearer token and whether it came from the cookie (which needs an Origin check)."""
    found = find_credentials(conn, _WITH_QUERY if allow_query else _WITHOUT_QUERY)
    if found is None:
        return None, False
    return found.token, found.source == "cookie"


_WITH_QUERY: tuple[TokenSource, ...] = ("header", "query", "cookie")
_WITHOUT_QUERY: tuple[TokenSource, ...] = ("header", "cookie")


def check_origin(conn: HTTPConnection, settings: Settings) -> None:
    """A cookie-authenticated unsafe request must come from this site."""
    host = conn.headers.get("x-forwarded-host") or conn.headers.get("host")
    if not origin_matches(conn.headers.get("origin"), host, settings.cors_origins):
        raise errors.BadOrigin()


async def authenticate(
    conn: HTTPConnection, session: AsyncSession, *, unsafe: bool, allow_query: bool = False
) -> Principal:
    """Token → live session → user; raises Unauthorized, BadOrigin or UserBanned."""
    state = get_state(conn)
    token, from_cookie = read_token(conn, allow_query=allow_query)
    if not token:
        raise errors.Unauthorized()
    try:
        claims = state.tokens.decode(token)  # verified once per process (a reconnect: not again)
    except TokenError as exc:
        raise errors.Unauthorized("Invalid or expired token") from exc
    if from_cookie and unsafe:
        check_origin(conn, state.settings)
    principal = await load_principal(
        session, user_id=claims.user_id, session_id=claims.session_id, now=state.clock()
    )
    check_two_factor(state.settings, principal.user, conn.url.path)
    return principal


# What a user that PARLEY_REQUIRE_2FA puts in scope may do before it has a second factor.
TWO_FACTOR_SETUP_PATHS = frozenset(
    {
        "/service/api/2fa/setup",
        "/service/api/2fa/enable",
        "/service/api/profile",
        "/service/api/logout",
    }
)


def check_two_factor(settings: Settings, user: User, path: str) -> None:
    """403 `2fa_required` for a user in PARLEY_REQUIRE_2FA's scope without two-factor
    sign-in, except on the routes that set it up."""
    scope = settings.require_2fa
    if scope == "none" or user.totp_enabled or (scope == "admins" and not user.is_admin):
        return
    if path not in TWO_FACTOR_SETUP_PATHS:
        raise errors.TwoFactorRequired()


async def load_principal(
    session: AsyncSession, *, user_id: int, session_id: str, now: datetime
) -> Principal:
    """`session_id` is the token's `sid`; the Principal carries the session's row id."""
    row = (
        await session.execute(
            select(
                User,
                LoginSession.id,
                LoginSession.revoked_at,
                LoginSession.expires_at,
                Ban.user_id,
                Ban.expires_at,
            )
            .join(LoginSession, LoginSession.user_id == User.id)
            .outerjoin(Ban, Ban.user_id == User.id)
            .where(LoginSession.sid == session_id, User.id == user_id)
        )
    ).first()
    if row is None:
        raise errors.Unauthorized("Session not found")
    user, row_id, revoked_at, expires_at, banned, ban_expires = row
    if revoked_at is not None or expires_at <= now:
        raise errors.Unauthorized("Session has ended")
    if banned is not None and (ban_expires is None or ban_expires > now):
        raise errors.UserBanned()
    return Principal(user, row_id, False if banned is None else ban_expires)


async def current_principal(request: Request, session: SessionDep) -> Principal:
    return await authenticate(request, session, unsafe=request.method in UNSAFE_METHODS)


CurrentUser = Annotated[Principal, Depends(current_principal)]


def check_admin(me: Principal) -> None:
    if not me.user.is_admin:
        raise errors.Forbidden("Admins only", code="admin_required")


async def current_admin(me: CurrentUser) -> Principal:
    check_admin(me)
    return me


AdminDep = Annotated[Principal, Depends(current_admin)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller of a route that needs only its id, checked from memory."""

    id: int
    session_id: int


async def current_caller(request: Request) -> Caller:
    return await authenticate_caller(request, get_state(request))


async def authenticate_caller(conn: HTTPConnection, state: AppState) -> Caller:
    """What `current_principal` checks (token, live session, ban) without a query when the
    session is known: the per-process caches, kept exact by the broker's events, so a
    revoked session or a ban made through any process is refused on the next request."""
    token, from_cookie = read_token(conn)
    if not token:
        raise errors.Unauthorized()
    try:
        claims = state.tokens.decode(token)
    except TokenError as exc:
        raise errors.Unauthorized("Invalid or expired token") from exc
    if from_cookie and conn.scope["method"] in UNSAFE_METHODS:
        check_origin(conn, state.settings)
    if state.settings.require_2fa != "none":  # needs the user's row: the full check
        async with state.reads() as session:
            principal = await authenticate(conn, session, unsafe=False)
        return Caller(principal.id, principal.session_id)
    session_id = await state.logins.check(user_id=claims.user_id, sid=claims.session_id)
    if await state.checks.banned(claims.user_id):
        raise errors.UserBanned()
    return Caller(claims.user_id, session_id)


CallerDep = Annotated[Caller, Depends(current_caller)]


async def state_dep(request: Request) -> AppState:
    """Async: FastAPI runs a plain `def` dependency in a worker thread, per request."""
    return get_state(request)


StateDep = Annotated[AppState, Depends(state_dep)]


@dataclass(frozen=True, slots=True)
class Context:
    """What most handlers need at once: the caller, the request's session and the state."""

    me: Principal
    session: AsyncSession
    state: AppState

    @property
    def user_id(self) -> int:
        return self.me.id

    @property
    def broker(self) -> Broker:
        return self.state.broker

    def now(self) -> datetime:
        return self.state.clock()

    @property
    def actor(self) -> Actor:
        """The caller, now (the clock is read at each use, as `now()` reads it)."""
        return Actor(self.me.id, self.state.clock())


async def request_context(me: CurrentUser, session: SessionDep, state: StateDep) -> Context:
    return Context(me, session, state)


async def admin_context(me: AdminDep, session: SessionDep, state: StateDep) -> Context:
    return Context(me, session, state)


ContextDep = Annotated[Context, Depends(request_context)]
AdminContextDep = Annotated[Context, Depends(admin_context)]


M = TypeVar("M", bound=BaseModel)


def created_or_existing(public: M, created: bool) -> M | JSONResponse:
    """A create that may find the thing already there (an idempotent retry, the one direct
    chat of a pair): the route's 201 when it was made, else 200 with the same body."""
    if created:
        return public
    return JSONResponse(public.model_dump(mode="json"), status_code=200)


@dataclass(frozen=True, slots=True)
class Page:
    """`limit` (at most MAX_PAGE) and `offset` of a listing."""

    limit: int
    offset: int


async def offset_page(limit: Limit = 50, offset: Offset = 0) -> Page:
    return Page(min(limit, MAX_PAGE), offset)


PageDep = Annotated[Page, Depends(offset_page)]
