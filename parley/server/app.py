"""The server ASGI app: wiring of state, routers, error handlers, metrics and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from datetime import datetime
from email.utils import parseaddr
from types import FrameType
from typing import Any, cast

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from parley import __version__, errors, redisclient
from parley.bodies import BodyLimitMiddleware
from parley.clock import Clock, as_clock
from parley.config import Settings
from parley.private_api import defer_signal
from parley.security import AccessTokens
from parley.server import compat, problems
from parley.server.accounts.avatars import DataUrls
from parley.server.accounts.routes import router as accounts_router
from parley.server.accounts.service import Issuer
from parley.server.admin.routes import router as admin_router
from parley.server.cache import LoginSessions, SendChecks
from parley.server.chats.general import ensure_general
from parley.server.chats.routes import router as chats_router
from parley.server.db.session import make_engine, make_sessionmaker, migrate
from parley.server.email.mailer import make_mailer
from parley.server.email.routes import router as email_router
from parley.server.instance.routes import router as instance_router
from parley.server.integrations.events import BotEvents
from parley.server.integrations.exports import ExportJobs
from parley.server.integrations.routes import chat_router as integrations_chat_router
from parley.server.integrations.routes import export_router as integrations_export_router
from parley.server.integrations.routes import hooks_router as integrations_hooks_router
from parley.server.integrations.routes import router as integrations_router
from parley.server.invites.routes import router as invites_router
from parley.server.messages.fastpath import HistoryFastPath
from parley.server.messages.history import HistoryPages
from parley.server.messages.routes import router as messages_router
from parley.server.messages.service import do_send
from parley.server.messages.writer import Writer
from parley.server.metrics import ServerMetrics
from parley.server.middleware import MetricsMiddleware, SocketFastPath
from parley.server.moderation.routes import router as moderation_router
from parley.server.outbound import Outbound
from parley.server.previews.service import LinkPreviews
from parley.server.push.keys import load_vapid
from parley.server.push.routes import router as push_router
from parley.server.push.sender import Pusher
from parley.server.realtime import protocol
from parley.server.realtime.broker import make_broker
from parley.server.realtime.hub import Hub
from parley.server.realtime.presence import Presence
from parley.server.realtime.views import SocketView, read_views
from parley.server.realtime.ws import websocket_endpoint
from parley.server.state import AppState
from parley.server.storage import make_storage
from parley.server.throttle import Throttle
from parley.server.trust.routes import router as trust_router
from parley.server.workers import start_workers
from parley.wsserver import SansIOWebSocket, freeze_startup_heap

WS_PATHS = ("/service/ws", "/ws")
log = logging.getLogger("parley.server")
CLOSE_GOING_AWAY = 1001
CLOSE_SERVICE_RESTART = 1012  # a rollout: clients reconnect (to another replica) and sync
_LIFESPAN_MARGIN = 2.0  # of PARLEY_SHUTDOWN_TIMEOUT, kept for closing the backends


def make_state(
    settings: Settings, *, clock: Clock | Callable[[], datetime] | None = None
) -> AppState:
    engine = make_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout,
    )
    # On SQLite, what only reads gets a pool of its own: writers waiting for the one write
    # lock hold their pooled connections, never the ones a handshake, a sync or a history
    # page reads through (WAL lets them read meanwhile).
    read_engine = engine
    if engine.dialect.name == "sqlite":
        read_engine = make_engine(settings.sqlalchemy_url, pool_timeout=settings.db_pool_timeout)
    redis = settings.redis_dsn
    the_clock = as_clock(clock)
    sessions = make_sessionmaker(engine)
    process = uuid.uuid4().hex[:12]
    broker = make_broker(
        redis,
        prefix=settings.redis_prefix,
        clock=the_clock,
        process=process,
        keepalive=settings.broker_keepalive,
    )
    # Collaborators open sessions through the state, so swapping its engine (tests of an
    # outage) reaches them too.
    state: AppState
    state_sessions = cast(async_sessionmaker[AsyncSession], lambda: state.sessions())
    # What only reads (caches, presence audiences): on SQLite a deferred BEGIN, so it never
    # queues behind the writer for the write lock (nor makes the writer wait behind it).
    state_reads = cast(async_sessionmaker[AsyncSession], lambda: state.reads())

    async def sockets_views(user_ids: Collection[int]) -> dict[int, SocketView]:
        async with state_reads() as session:
            return await read_views(session, user_ids, now=the_clock())

    hub = Hub(
        presence_timeout=settings.presence_timeout,
        monotonic=the_clock.monotonic,
        process=process,
        read_views=sockets_views,
    )
    presence = Presence(
        hub=hub,
        broker=broker,
        sessions=state_sessions,
        reads=state_reads,
        clock=the_clock,
        max_group=settings.presence_max_group,
        redis=_redis_client(redis),
        prefix=settings.redis_prefix,
        process_ttl=settings.presence_process_ttl,
    )
    hub.on_presence = presence.on_local_flip
    checks = SendChecks(state_reads, the_clock)
    logins = LoginSessions(state_reads, the_clock)
    pages = HistoryPages()
    hub.listeners += [checks.on_event, logins.on_event, pages.on_event]
    storage = make_storage(settings)
    jwt_key = settings.jwt_key()
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        reads=make_sessionmaker(read_engine, read_only=True),
        read_engine=read_engine,
        broker=broker,
        hub=hub,
        throttle=Throttle(
            {
                "send": settings.rate_send,
                "typing": settings.rate_typing,
                "login": settings.rate_login,
                "login_ip": settings.rate_login_ip,
                "forgot": settings.rate_forgot,
                "forgot_ip": settings.rate_forgot_ip,
                "webhook": settings.rate_webhook,
                **protocol.frame_rates(settings.rate_frames),
            },
            redis_url=redis,
            prefix=settings.redis_prefix,
            clock=the_clock,
        ),
        storage=storage,
        outbound=Outbound(settings.outbound_allow, clock=the_clock),
        jwt_key=jwt_key,
        tokens=AccessTokens(jwt_key),
        logins=logins,
        pages=pages,
        clock=the_clock,
        writer=Writer(
            state_sessions,
            broker,
            the_clock,
            max_pending=settings.send_queue,
            engine=lambda: state.engine,
        ),
        checks=checks,
        presence=presence,
        issuer=Issuer(jwt_key, settings.access_ttl, settings.refresh_ttl, the_clock),
        avatar_urls=DataUrls(storage),
        started=the_clock.monotonic(),
        mailer=make_mailer(settings),
    )
    if settings.link_previews:
        state.previews = LinkPreviews(
            sessions=state_sessions,
            outbound=state.outbound,
            storage=storage,
            broker=broker,
            clock=the_clock,
        )
        state.writer.on_new.append(state.previews.offer)

    async def post_reply(bot_id: int, chat_id: int, text: str) -> object:
        return await do_send(
            state.writer,
            state.checks,
            state.throttle,
            user_id=bot_id,
            chat_id=chat_id,
            content=text,
        )

    state.bot_events = BotEvents(state_sessions, state.outbound, broker, the_clock, post_reply)
    state.writer.on_new.append(state.bot_events.on_messages)
    hub.listeners.append(state.bot_events.on_event)
    state.exports = ExportJobs()
    return state


def _redis_client(url: str | None) -> Any:
    if not url:
        return None
    return redisclient.connect(url)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.parley
    lock_dir = state.settings.data_dir if state.engine.dialect.name == "sqlite" else None
    await migrate(state.engine, lock_dir)
    async with state.sessions() as session:
        await ensure_general(session)
    await state.broker.start(state.hub.handle)
    await state.presence.start()
    state.writer.start()
    if state.previews is not None:
        state.previews.start()
    if state.pusher is not None:
        state.pusher.start()
    if state.bot_events is not None:
        state.bot_events.start()
    workers = start_workers(state)
    log.info("server ready (database: %s)", state.engine.dialect.name)
    try:
        yield
    finally:
        state.hub.close_all(CLOSE_GOING_AWAY)
        await state.clock.sleep(0.05)  # let writers send their close frames
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if state.bot_events is not None:
            await state.bot_events.close()
        if state.exports is not None:
            await state.exports.close()
        await state.writer.close()
        if state.previews is not None:
            await state.previews.stop()
        if state.pusher is not None:
            await state.pusher.close()
        await state.presence.close()
        await state.hub.close()
        await state.broker.close()
        await state.storage.close()
        await state.outbound.aclose()
        await state.mailer.aclose()
        await state.engine.dispose()
        if state.read_engine is not None:
            await state.read_engine.dispose()


def create_app(
    settings: Settings, *, clock: Clock | Callable[[], datetime] | None = None
) -> FastAPI:
    settings.make_data_dir()
    app = FastAPI(
        title="Parley",
        version=__version__,
        description="Self-hosted chat: accounts, chats, messages, real time.",
        lifespan=_lifespan,
    )
    app.state.parley = state = make_state(settings, clock=clock)
    state.metrics = metrics = ServerMetrics(
        lambda: state.hub.connection_count, state.started, state.clock.monotonic
    )
    metrics.bind_database(state.engine, state.read_engine)
    state.pusher = _make_pusher(state, metrics)
    state.writer.on_new.append(state.pusher.on_new)
    for router in (
        accounts_router,
        chats_router,
        messages_router,
        moderation_router,
        compat.router,
        instance_router,
        invites_router,
        email_router,
        push_router,
        trust_router,
        admin_router,
        integrations_router,
        integrations_chat_router,
        integrations_hooks_router,
        integrations_export_router,
    ):
        app.include_router(router)
    for path in WS_PATHS:
        app.add_api_websocket_route(path, websocket_endpoint)
    _add_error_handlers(app, metrics)
    app.add_middleware(HistoryFastPath)  # innermost: a plain history page skips the router
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, settings=settings)  # outermost: before any read

    @app.get("/service/metrics", include_in_schema=False)
    async def metrics_route(request: Request) -> Response:
        if not _may_read_metrics(request, settings):
            return _error(403, "forbidden", "Metrics are not served to this address")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _make_pusher(state: AppState, metrics: ServerMetrics) -> Pusher:
    settings, hub = state.settings, state.hub

    def is_active(user_id: int, seconds: float) -> bool:
        since = hub.monotonic() - seconds
        return any(conn.last_active > since for conn in hub.connections_of(user_id))

    base = settings.public_base
    sender = parseaddr(settings.smtp_from)[1] or "parley@localhost"
    return Pusher(
        state.sessions,
        state.outbound,
        load_vapid(settings.vapid_private_key, settings.data_dir),
        state.clock,
        subject=base if base.startswith("https://") else f"mailto:{sender}",
        idle_seconds=settings.push_idle_seconds,
        show_content=settings.push_content == "on",
        is_active=is_active,
        max_queue=settings.push_queue,
        registry=metrics.registry,
    )


def _may_read_metrics(request: Request, settings: Settings) -> bool:
    """The peer and every forwarded hop (a gateway adds the real client) must be allowed."""
    hops = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
    forwarded = [hop for hop in hops if hop.strip()]
    peer = request.client.host if request.client else None
    return settings.may_read_metrics(peer, *forwarded)


def _error(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    """Every failure is classified once (problems.py) and answered as `{detail, code}`."""

    async def answer(_request: Request, exc: Exception) -> JSONResponse:
        problem = problems.report(exc, metrics)
        headers = None
        if problem.retry_after is not None:
            headers = {"Retry-After": str(problem.retry_after)}
        return _error(problem.status, problem.code, problem.detail, headers)

    for kind in (
        errors.ParleyError,
        RequestValidationError,
        StarletteHTTPException,
        DataError,
        OverflowError,
        *problems.BACKEND_DOWN,  # IntegrityError is a DBAPIError: found by its class
        Exception,
    ):
        app.add_exception_handler(kind, answer)


def uvicorn_config(app: ASGIApp, settings: Settings, *, port: int | None = None) -> uvicorn.Config:
    # uvicorn's sans-I/O WebSocket protocol (the fastest measured, docs/performance.md),
    # with a graceful close on a protocol failure (1009, 1007): parley/wsserver.py. It
    # refuses a handshake with an HTTP answer (401 before the upgrade) like the legacy one.
    return uvicorn.Config(
        SocketFastPath(app) if isinstance(app, FastAPI) else app,
        host=settings.server_host,  # never the gateway's --host (see Settings.server_host)
        port=port if port is not None else settings.port,
        ws=SansIOWebSocket,
        # Compressing every frame cost ~5 % of the send path's CPU (py-spy) for small JSON
        # frames, mostly on loopback behind the gateway: frames go out as they are.
        ws_per_message_deflate=False,
        ws_max_size=settings.ws_max_frame,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout(settings),
        lifespan="on",
    )


def graceful_timeout(settings: Settings) -> int:
    """Seconds in-flight requests get after the listener closes, within the shutdown budget."""
    left = settings.shutdown_timeout - settings.shutdown_drain - _LIFESPAN_MARGIN
    return max(1, int(left))


class ParleyServer(uvicorn.Server):
    """Graceful rollout on SIGTERM/SIGINT, all within PARLEY_SHUTDOWN_TIMEOUT.

    1. readiness turns false at once (/health answers 503 "draining");
    2. after PARLEY_SHUTDOWN_DRAIN seconds (0: at once) the listener closes;
    3. open sockets close with 1012 so clients reconnect to another replica;
    4. in-flight requests finish (cancelled past the budget); the backends close.
    A second signal skips the drain.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.parley: AppState = app.state.parley
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = self.parley.settings.shutdown_drain
        if not self.parley.draining:
            log.info("shutting down: readiness off, draining for %.1fs", drain)
        if self.parley.draining or drain <= 0:
            self.parley.draining = True
            super().handle_exit(sig, frame)
            return
        self.parley.draining = True
        defer_signal(self, sig)  # uvicorn re-raises it once stopped, as usual
        self._drain_until = self.parley.clock.monotonic() + drain

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and self.parley.clock.monotonic() >= self._drain_until:
            return True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self.parley.draining = True
        for listener in self.servers:
            listener.close()  # no new connections from here on
        self.parley.hub.close_all(CLOSE_SERVICE_RESTART)
        await self.parley.clock.sleep(0.1)  # let the writers send their close frames
        await super().shutdown(sockets)


def run_server(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings)
    freeze_startup_heap(settings.gc_full_every)
    ParleyServer(uvicorn_config(app, settings), app).run()
