"""Background loops of a server process: expiry sweeps, session watch, presence sweep and
heartbeat, unattached uploads.

Each job takes the collaborators it uses; `start_workers` (part of the composition layer)
picks them from the state. Every loop waits on the process's Clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from parley.clock import Clock
from parley.config import Settings
from parley.server.accounts.profile import end_expired_minds
from parley.server.cache import SendChecks
from parley.server.db.models import Ban
from parley.server.db.models import Session as LoginSession
from parley.server.email.digest import send_digests
from parley.server.instance import settings as instance
from parley.server.integrations.exports import delete_expired
from parley.server.jobs import run_logged
from parley.server.messages.attachments import delete_orphans
from parley.server.messages.retention import enforce_retention
from parley.server.messages.scheduled import send_due
from parley.server.messages.writer import Writer
from parley.server.moderation.service import lift_expired
from parley.server.realtime.broker import Broker
from parley.server.realtime.connection import CLOSE_BANNED, CLOSE_SESSION_ENDED
from parley.server.realtime.hub import Hub
from parley.server.state import AppState
from parley.server.storage import Storage
from parley.server.throttle import Throttle

log = logging.getLogger("parley.workers")
Sessions = async_sessionmaker[AsyncSession]
Job = Callable[[], Awaitable[object]]


async def run_every(clock: Clock, seconds: float, job: Job, name: str) -> None:
    """Runs `job` forever, `seconds` apart; a failing run is logged and the loop goes on."""
    while True:
        await clock.sleep(seconds)
        await run_logged(job, log, "%s failed; will retry", name)


async def sweep_expired(sessions: Sessions, broker: Broker, clock: Clock) -> tuple[int, int]:
    """Lifts timed blocks and bans whose expires_at has passed."""
    async with sessions() as session:
        return await lift_expired(session, broker, now=clock())


async def watch_sessions(hub: Hub, sessions: Sessions, clock: Clock) -> None:
    """Closes this process's sockets whose session ended or whose user got banned.

    Events close them at once; this catches any notification that was lost.
    """
    session_ids = hub.session_ids()
    if not session_ids:
        return
    now = clock()
    async with sessions() as session:
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
        hub.close_sessions(set(banned.scalars()), CLOSE_BANNED)
        hub.close_sessions(set(ended.scalars()), CLOSE_SESSION_ENDED)


async def sweep_orphan_uploads(
    sessions: Sessions, storage: Storage, clock: Clock, *, max_age: float
) -> int:
    """Deletes uploads never attached to a message after `max_age` seconds
    (PARLEY_UPLOAD_ORPHAN_SECONDS)."""
    older_than = clock() - timedelta(seconds=max_age)
    async with sessions() as session:
        return await delete_orphans(session, storage, older_than=older_than)


async def sweep_retention(
    sessions: Sessions, storage: Storage, broker: Broker, clock: Clock, *, settings: Settings
) -> int:
    """Erases messages past their chat's retention, else the server-wide one (the admin's
    setting, else PARLEY_RETENTION_DAYS), read on every run."""
    async with sessions() as session:
        days = await instance.read(session, settings, "retention_days")
        return await enforce_retention(session, storage, broker, default_days=days, now=clock())


async def sweep_exports(sessions: Sessions, storage: Storage, clock: Clock) -> int:
    """Deletes exports past their 7 days, row and file."""
    async with sessions() as session:
        return await delete_expired(session, storage, now=clock())


async def sweep_minds(sessions: Sessions, broker: Broker, clock: Clock, *, max_group: int) -> int:
    """Ends statuses and do-not-disturb periods whose time has come (`user_updated`)."""
    async with sessions() as session:
        return await end_expired_minds(session, broker, now=clock(), max_group=max_group)


async def send_scheduled(
    sessions: Sessions,
    writer: Writer,
    checks: SendChecks,
    throttle: Throttle,
    broker: Broker,
    clock: Clock,
) -> int:
    """Sends the scheduled messages whose `send_at` has come."""
    return await send_due(sessions, writer, checks, throttle, broker, now=clock())


def start_workers(state: AppState) -> list[asyncio.Task[None]]:
    settings, clock, hub = state.settings, state.clock, state.hub
    presence_every = max(0.2, min(5.0, settings.presence_timeout / 4))

    def loop(seconds: float, job: Job, name: str) -> asyncio.Task[None]:
        return asyncio.create_task(run_every(clock, seconds, job, name), name=f"worker-{name}")

    sweeps: dict[str, Job] = {  # each every worker interval
        "expiry sweep": lambda: sweep_expired(state.sessions, state.broker, clock),
        "upload sweep": lambda: sweep_orphan_uploads(
            state.sessions, state.storage, clock, max_age=settings.upload_orphan_seconds
        ),
        "retention sweep": lambda: sweep_retention(
            state.sessions, state.storage, state.broker, clock, settings=settings
        ),
        "export sweep": lambda: sweep_exports(state.sessions, state.storage, clock),
        "status sweep": lambda: sweep_minds(
            state.sessions, state.broker, clock, max_group=settings.presence_max_group
        ),
        "scheduled messages": lambda: send_scheduled(
            state.sessions, state.writer, state.checks, state.throttle, state.broker, clock
        ),
    }
    tasks = [
        loop(
            settings.session_check_interval,
            lambda: watch_sessions(hub, state.sessions, clock),
            "session watch",
        ),
        loop(presence_every, hub.sweep_presence, "presence sweep"),
        *(loop(settings.worker_interval, job, name) for name, job in sweeps.items()),
    ]
    if state.mailer.enabled:
        # a tenth of the delay (at most a minute, at least a worker interval) is precise enough
        digest_every = min(60.0, max(settings.worker_interval, settings.email_digest_minutes * 6))
        tasks.append(
            loop(
                digest_every,
                lambda: send_digests(
                    state.sessions,
                    state.mailer,
                    now=clock(),
                    delay=timedelta(minutes=settings.email_digest_minutes),
                    base=settings.public_base,
                    secret=settings.jwt_key(),
                ),
                "e-mail digests",
            )
        )
    if state.presence.shared:
        tasks.append(
            loop(state.presence.heartbeat_every, state.presence.heartbeat, "presence heartbeat")
        )
    return tasks
