"""A user's own login sessions: list them (with a device read from the user agent), end one
or all others."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from parley import errors
from parley.server.accounts.service import revoke_sessions
from parley.server.actor import Actor
from parley.server.db.models import Session as LoginSession
from parley.server.realtime.broker import Broker

# First match wins: Edge and Opera carry "Chrome", Chrome carries "Safari".
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("python-httpx", "httpx"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
_MOBILE = re.compile(r"Mobile|Android|iPhone")


def device_of(user_agent: str) -> str:
    """A short name for people ("Firefox on Linux"); "Unknown device" when nothing is known."""
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return (
        browser or system or ("Mobile device" if _MOBILE.search(user_agent) else "Unknown device")
    )


async def list_sessions(session: AsyncSession, actor: Actor) -> list[LoginSession]:
    """The user's live sessions, most recently used first."""
    user_id, now = actor
    rows = await session.execute(
        select(LoginSession)
        .where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        .order_by(LoginSession.last_used_at.desc(), LoginSession.id.desc())
    )
    return list(rows.scalars())


async def end_session(
    session: AsyncSession, broker: Broker, actor: Actor, *, session_id: int
) -> None:
    """One of the user's own live sessions (404 otherwise); its sockets close with 4001."""
    user_id, now = actor
    found = await session.get(LoginSession, session_id)
    if found is None or found.user_id != user_id or found.revoked_at is not None:
        raise errors.NotFound("No such session", code="session_not_found")
    await revoke_sessions(session, broker, user_id=user_id, ids=[session_id], now=now)


async def end_other_sessions(
    session: AsyncSession, broker: Broker, actor: Actor, *, keep: int
) -> None:
    user_id, now = actor
    await revoke_sessions(session, broker, user_id=user_id, keep=keep, now=now)
