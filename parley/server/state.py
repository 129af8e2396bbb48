"""The server's state, made once at start-up (the app's wiring; no FastAPI here).

Routes, frame handlers and workers (the composition layer) pick from it what each service
function needs: services take the session and their few collaborators (broker, writer,
checks, clock, throttle, storage, issuer), never the whole state, and import neither this
module nor FastAPI (tests/unit/test_layers.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from parley.clock import Clock
from parley.config import Settings
from parley.security import AccessTokens
from parley.server.accounts.avatars import DataUrls
from parley.server.accounts.service import Issuer
from parley.server.cache import LoginSessions, SendChecks
from parley.server.email.mailer import Mailer
from parley.server.messages.history import HistoryPages
from parley.server.messages.writer import Writer
from parley.server.metrics import ServerMetrics
from parley.server.outbound import Outbound
from parley.server.previews.service import LinkPreviews
from parley.server.realtime.broker import Broker
from parley.server.realtime.hub import Hub
from parley.server.realtime.presence import Presence
from parley.server.throttle import Throttle

if TYPE_CHECKING:
    from parley.server.integrations.events import BotEvents
    from parley.server.integrations.exports import ExportJobs
    from parley.server.push.sender import Pusher
    from parley.server.storage import Storage


@dataclass
class AppState:
    """Everything a request or a socket needs, made once at start-up."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]  # read-only work: no write lock on SQLite
    broker: Broker
    hub: Hub
    throttle: Throttle
    storage: Storage
    jwt_key: str
    clock: Clock
    writer: Writer
    checks: SendChecks
    presence: Presence
    issuer: Issuer
    avatar_urls: DataUrls
    tokens: AccessTokens  # access tokens already verified
    logins: LoginSessions  # live login sessions (REST authentication from memory)
    pages: HistoryPages  # encoded history pages
    started: float  # on `clock.monotonic`
    outbound: Outbound = field(default_factory=Outbound)  # every call out (outbound.py)
    caches: dict[str, Any] = field(default_factory=dict)
    metrics: ServerMetrics | None = None
    # The engine behind `reads`: on SQLite a pool of its own (app.py), else `engine`.
    read_engine: AsyncEngine | None = None
    draining: bool = False  # SIGTERM received: /health answers 503 so traffic moves away
    warned_untrusted_proxy: bool = False  # deps.client_ip's warning, logged once
    previews: LinkPreviews | None = None  # PARLEY_LINK_PREVIEWS on (previews/service.py)
    mailer: Mailer = field(default_factory=Mailer)  # e-mail (email/mailer.py); off without SMTP
    pusher: Pusher | None = None  # Web Push (push/sender.py), made with the metrics
    bot_events: BotEvents | None = None  # integrations: events to bots' URLs
    exports: ExportJobs | None = None  # integrations: ZIP exports being built
