"""Seed 000's routes: /api/v1/users, /api/v1/messages, /health, /stats."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, EmailStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from parley.server.accounts import service as accounts
from parley.server.accounts.schemas import Password, Strict, Username
from parley.server.chats.general import general_id
from parley.server.chats.service import count_chats
from parley.server.db.models import Message, User
from parley.server.db.session import ping
from parley.server.deps import CurrentUser, Limit, Offset, SessionDep, StateDep
from parley.server.messages import service as messages
from parley.server.messages.history import Paging
from parley.server.text import Content

router = APIRouter(tags=["compat"])


class SeedUser(BaseModel):
    id: int
    username: str
    email: str | None  # null except for the caller and for admins


class SeedUserCreate(Strict):
    username: Username
    email: EmailStr
    password: Password


class SeedMessage(BaseModel):
    id: int
    user_id: int | None
    username: str | None
    content: str
    created_at: datetime


class SeedMessageCreate(BaseModel):
    content: Content  # user_id/username in the body are ignored: the token says who


@router.get("/api/v1/users")
async def seed_users(
    me: CurrentUser,
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[SeedUser]:
    users = await accounts.list_users(session, q="", limit=min(limit, 200), offset=offset)
    return [
        SeedUser(
            id=u.id,
            username=u.username,
            email=u.email if accounts.sees_email(me.user, u.id) else None,
        )
        for u in users
    ]


@router.post("/api/v1/users", status_code=201)
async def seed_register(body: SeedUserCreate, session: SessionDep) -> SeedUser:
    user = await accounts.create_user(
        session, username=body.username, email=str(body.email), password=body.password
    )
    return SeedUser(id=user.id, username=user.username, email=user.email)


@router.get("/api/v1/messages")
async def seed_messages(
    me: CurrentUser,
    session: SessionDep,
    state: StateDep,
    limit: Limit = 20,
    offset: Offset = 0,
) -> list[SeedMessage]:
    """`general`, newest first."""
    chat_id = await general_id(session)
    page = await messages.list_messages(
        session,
        user_id=me.id,
        chat_id=chat_id,
        paging=Paging(min(limit, 200), offset=offset),
        now=state.clock(),
    )
    return [
        SeedMessage(
            id=m.id,
            user_id=m.sender.id if m.sender else None,
            username=m.sender.username if m.sender else None,
            content=m.content,
            created_at=m.created_at,
        )
        for m in reversed(page)
    ]


@router.post("/api/v1/messages", status_code=201)
async def seed_post(
    body: SeedMessageCreate, me: CurrentUser, session: SessionDep, state: StateDep
) -> SeedMessage:
    general = await general_id(session)
    await session.close()  # hold no transaction (on SQLite: the write lock) while it is stored
    message, _ = await messages.do_send(
        state.writer,
        state.checks,
        state.throttle,
        metrics=state.metrics,
        user_id=me.id,
        chat_id=general,
        content=body.content,
    )
    return SeedMessage(
        id=message.id,
        user_id=me.id,
        username=me.user.username,
        content=message.content,
        created_at=message.created_at,
    )


@router.get("/health")
async def health(state: StateDep) -> JSONResponse:
    """200 when the database answers; every configured backend is listed in `checks`."""
    checks: dict[str, str] = {}
    probes: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] = (
        ("database", lambda: ping(state.engine, state.clock)),
        ("broker", state.broker.check),
        ("storage", state.storage.check),
    )
    for name, probe in probes:
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    healthy = checks["database"] == "ok" and not state.draining
    status = "draining" if state.draining else "ok" if healthy else "unavailable"
    return JSONResponse(
        {"status": status, "checks": checks},
        status_code=200 if healthy else 503,
    )


STATS_TTL = 5.0  # seconds: /stats is public, and counting rows is not free


@router.get("/stats")
async def stats(session: SessionDep, state: StateDep) -> dict[str, Any]:
    """The counts are computed at most once every STATS_TTL seconds."""
    cached: tuple[float, dict[str, int]] | None = state.caches.get("stats")
    now = state.clock.monotonic()
    if cached is None or now - cached[0] >= STATS_TTL:
        cached = now, await _counts(session)
        state.caches["stats"] = cached
    return {
        **cached[1],
        "connections": state.hub.connection_count,
        "uptime_seconds": round(now - state.started, 3),
    }


async def _counts(session: AsyncSession) -> dict[str, int]:
    users = (await session.execute(select(func.count(User.id)))).scalar_one()
    total = (await session.execute(select(func.count(Message.id)))).scalar_one()
    return {"users": users, "chats": await count_chats(session), "messages": total}
