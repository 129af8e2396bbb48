"""Background loops of a server process: expiry sweeps, session watch, presence sweep,
unattached uploads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import or_, select

from parley.server.db.models import Ban
from parley.server.db.models import Session as LoginSession
from parley.server.messages.attachments import delete_orphans
from parley.server.moderation.service import lift_expired
from parley.server.realtime.hub import CLOSE_BANNED, CLOSE_SESSION_ENDED
from parley.server.state import AppState

log = logging.getLogger("parley.workers")


async def run_every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Runs `job` forever, `seconds` apart; a failing run is logged and the loop goes on."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s failed; will retry", name, exc_info=True)


async def sweep_expired(state: AppState) -> tuple[int, int]:
    """Lifts timed blocks and bans whose expires_at has passed."""
    async with state.sessions() as session:
        return await lift_expired(session, state.broker, now=state.clock())


async def watch_sessions(state: AppState) -> None:
    """Closes this process's sockets whose session ended or whose user got banned.

    Events close them at once; this catches any notification that was lost.
    """
    session_ids = state.hub.session_ids()
    if not session_ids:
        return
    now = state.clock()
    async with state.sessions() as session:
        ended = await session.execute(
            select(LoginSession.id).where(
                LoginSession.id.in_(session_ids),
                or_(LoginSession.revoked_at.is_not(None), LoginSession.expires_at <= now),
            )
        )
        banned = await session.execute(
            select(LoginSession.id)
            .join(Ban, Ban.user_id == LoginSession.user_id)
            .where(
                LoginSession.id.in_(session_ids),
                or_(Ban.expires_at.is_(None), Ban.expires_at > now),
            )
        )
        state.hub.close_sessions(set(banned.scalars()), CLOSE_BANNED)
        state.hub.close_sessions(set(ended.scalars()), CLOSE_SESSION_ENDED)


async def sweep_orphan_uploads(state: AppState) -> int:
    """Deletes uploads never attached to a message after PARLEY_UPLOAD_ORPHAN_SECONDS."""
    older_than = state.clock() - timedelta(seconds=state.settings.upload_orphan_seconds)
    async with state.sessions() as session:
        return await delete_orphans(session, state.storage, older_than=older_than)


def start_workers(state: AppState) -> list[asyncio.Task[None]]:
    settings = state.settings
    presence_every = max(0.2, min(5.0, settings.presence_timeout / 4))
    return [
        asyncio.create_task(
            run_every(settings.worker_interval, lambda: sweep_expired(state), "expiry sweep")
        ),
        asyncio.create_task(
            run_every(
                settings.session_check_interval, lambda: watch_sessions(state), "session watch"
            )
        ),
        asyncio.create_task(
            run_every(settings.worker_interval, lambda: sweep_orphan_uploads(state), "upload sweep")
        ),
        asyncio.create_task(run_every(presence_every, state.hub.sweep_presence, "presence sweep")),
    ]
