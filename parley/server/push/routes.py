"""HTTP routes for Web Push: the server's key and the caller's subscriptions."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StringConstraints

from parley import errors
from parley.clientip import parse_networks
from parley.server.accounts.schemas import Strict
from parley.server.deps import (
    NO_CONTENT,
    ContextDep,
    CurrentUser,
    IdPath,
    StateDep,
    created_or_existing,
)
from parley.server.push import keys, service

router = APIRouter(prefix="/service/api/push", tags=["push"])
Base64Url = Annotated[str, StringConstraints(min_length=1, pattern=r"^[A-Za-z0-9_\-=]+$")]


class SubscriptionKeys(Strict):
    p256dh: Annotated[Base64Url, StringConstraints(max_length=128)]
    auth: Annotated[Base64Url, StringConstraints(max_length=64)]


class SubscriptionCreate(Strict):
    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    keys: SubscriptionKeys


class SubscriptionPublic(BaseModel):
    id: int
    endpoint: str
    created_at: datetime


class PushKey(BaseModel):
    public_key: str


def _check_endpoint(endpoint: str, allow: list[str]) -> None:
    """https, or http to an address inside PARLEY_OUTBOUND_ALLOW (tests, a local relay)."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        try:
            ip = ipaddress.ip_address(parts.hostname)
        except ValueError:
            ip = None
        if ip is not None and any(ip in network for network in parse_networks(allow)):
            return
    raise errors.ValidationFailed("A push endpoint must be an https URL", code="validation_error")


@router.get("/key")
async def push_key(_me: CurrentUser, state: StateDep) -> PushKey:
    assert state.pusher is not None  # made with the app
    return PushKey(public_key=keys.public_key(state.pusher.vapid))


@router.post("/subscriptions", status_code=201, response_model=SubscriptionPublic)
async def subscribe(body: SubscriptionCreate, ctx: ContextDep) -> JSONResponse | SubscriptionPublic:
    _check_endpoint(body.endpoint, ctx.state.settings.outbound_allow)
    row, created = await service.subscribe(
        ctx.session,
        user_id=ctx.user_id,
        endpoint=body.endpoint,
        p256dh=body.keys.p256dh,
        auth=body.keys.auth,
        now=ctx.now(),
    )
    public = SubscriptionPublic(id=row.id, endpoint=row.endpoint, created_at=row.created_at)
    assert ctx.state.pusher is not None  # made with the app
    ctx.state.pusher.subscribed()
    return created_or_existing(public, created)


@router.get("/subscriptions")
async def list_subscriptions(ctx: ContextDep) -> list[SubscriptionPublic]:
    rows = await service.list_subscriptions(ctx.session, user_id=ctx.user_id)
    return [SubscriptionPublic(id=r.id, endpoint=r.endpoint, created_at=r.created_at) for r in rows]


@router.delete("/subscriptions/{subscription_id}", **NO_CONTENT)
async def unsubscribe(subscription_id: IdPath, ctx: ContextDep) -> None:
    await service.unsubscribe(ctx.session, user_id=ctx.user_id, subscription_id=subscription_id)
