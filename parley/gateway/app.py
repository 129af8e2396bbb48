"""The gateway ASGI app: which route goes where, the JWT check and the rate limits before
it, CORS preflights, /metrics and /health. The pages, the HTTP proxy, the WebSocket proxy
and the per-request bookkeeping live in modules of their own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from parley.clientip import client_ip, is_trusted, parse_networks
from parley.clock import Clock
from parley.config import Settings
from parley.credentials import find_credentials
from parley.gateway.answers import error_response, refuse_handshake, send_error
from parley.gateway.auth import TOKEN_SOURCES, check_token, is_cross_site, is_public
from parley.gateway.balancer import UpstreamPool
from parley.gateway.exchange import Exchange, record, request_id, route_template, wrap_send
from parley.gateway.forwarding import Forwarding
from parley.gateway.metrics import GatewayMetrics
from parley.gateway.pages import PAGE_PREFIXES, PAGES, WebClient
from parley.gateway.proxy import HttpProxy
from parley.gateway.ratelimit import Decision, RateLimits
from parley.gateway.wsproxy import WebSocketRelay
from parley.private_api import route_path
from parley.security import AccessTokens, TokenError

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_UNLIMITED_ROUTES = frozenset({"/static/*", "/metrics"})
_WS_PATHS = ("/ws", "/service/ws")


def _is_ws_path(scope: Scope) -> bool:
    return route_path(scope) in _WS_PATHS


class Gateway:
    """The ASGI app; `create_app` builds it."""

    def __init__(
        self,
        settings: Settings,
        *,
        static_dir: Path,
        connect_timeout: float,
        read_timeout: float,
        fail_timeout: float,
        max_upstream_connections: int = 1000,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or Clock()  # the gateway's own (rate-limit windows)
        self.jwt_key = settings.jwt_key()
        self.tokens = AccessTokens(self.jwt_key)
        self.trusted = parse_networks(settings.trusted_proxies)
        self.metrics = GatewayMetrics(user_label_limit=settings.metrics_user_labels)
        self.rate_limits = RateLimits(settings, clock=self.clock)
        self.pool = UpstreamPool(settings.upstream_urls, fail_timeout=fail_timeout)
        self.http = HttpProxy(
            self.pool,
            settings=settings,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_upstream_connections,
        )
        self.websockets = WebSocketRelay(
            self.pool,
            connect_timeout=connect_timeout,
            handshake_timeout=read_timeout,
        )
        self.inflight: dict[str, int] = {}  # HTTP requests being answered, per client IP
        self.web = WebClient(static_dir)
        self.router = Router(routes=self._routes(), lifespan=self._lifespan, default=_not_found)

    def _routes(self) -> list[Route | Mount | WebSocketRoute]:
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        pages = [Route(path, self.web.page, methods=["GET", "HEAD"]) for path in PAGES]
        pages += [
            Route(prefix + "{value}", self.web.page, methods=["GET", "HEAD"])
            for prefix in PAGE_PREFIXES
        ]
        proxy = _Asgi(self._proxy)
        return [
            *pages,
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/health", self._health, methods=["GET", "HEAD"]),
            Mount("/static", app=self.web.static_files),
            Route("/stats", proxy, methods=["GET", "HEAD"]),
            *(WebSocketRoute(path, self._websocket) for path in _WS_PATHS),
            Route("/service/{path:path}", proxy, methods=methods),
            Route("/api/v1", proxy, methods=methods),
            Route("/api/v1/{path:path}", proxy, methods=methods),
            Route("/hooks/{path:path}", proxy, methods=["POST"]),  # incoming webhooks
        ]

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: object) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.websockets.close_all(1001)
            await self.http.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.router(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        exchange = Exchange(
            request_id=request_id(conn),
            route=route_template(scope),
            client_ip=client_ip(_peer(scope), conn.headers.get("x-forwarded-for"), self.trusted),
            started=time.perf_counter(),
        )
        scope.setdefault("state", {})["exchange"] = exchange
        wrapped = wrap_send(send, exchange, conn, self.settings.cors_origins)
        try:
            if scope["type"] == "http":
                await self._counted(conn, scope, receive, wrapped, exchange)
            else:
                await self._handle(conn, scope, receive, wrapped, exchange)
        finally:
            record(self.metrics, scope, exchange)

    async def _counted(
        self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send, ex: Exchange
    ) -> None:
        """At most PARLEY_MAX_INFLIGHT_PER_IP requests of one client IP at a time (429)."""
        ip = ex.client_ip
        held = self.inflight.get(ip, 0)
        if held >= self.settings.max_inflight_per_ip:
            self.metrics.observe_blocked(route=ex.route, scope="inflight")
            ex.headers["Retry-After"] = "1"
            await send_error(send, 429, "Too many requests at once, slow down", "rate_limited")
            return
        self.inflight[ip] = held + 1
        try:
            await self._handle(conn, scope, receive, send, ex)
        finally:
            left = self.inflight[ip] - 1
            if left:
                self.inflight[ip] = left
            else:
                del self.inflight[ip]

    async def _handle(
        self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send, ex: Exchange
    ) -> None:
        if scope["type"] == "http" and _is_preflight(conn):
            await self._preflight(conn, send)
            return
        refusal = await self._guard(conn, ex)
        if refusal is None and scope["type"] == "websocket" and _is_ws_path(scope):
            # Straight to the relay, without the router's layers: each would keep a
            # coroutine alive for as long as the socket is open.
            await self._websocket(WebSocket(scope, receive, send))
        elif refusal is None:
            await self.router(scope, receive, send)
        elif scope["type"] == "websocket":
            await refuse_handshake(send, scope, refusal)
        else:
            await refusal(scope, receive, send)

    async def _guard(self, conn: HTTPConnection, ex: Exchange) -> Response | None:
        """Auth (protected routes) then the rate limit; a Response when the request is refused."""
        method = conn.scope.get("method", "GET")
        public = is_public(method, conn.scope["path"]) and conn.scope["type"] == "http"
        if public or ex.route == "other":  # "other" is a 404 whoever asks
            return await self._limit(ex, None)
        credentials = find_credentials(conn, TOKEN_SOURCES)
        try:
            claims = check_token(self.tokens, credentials)
        except TokenError:
            return error_response(401, "Authentication required", "unauthorized")
        assert credentials is not None
        if is_cross_site(conn, credentials, self.settings.cors_origins):
            return error_response(403, "Cross-site request refused", "bad_origin")
        ex.user_id = claims.user_id
        conn.scope["state"]["credentials"] = credentials
        return await self._limit(ex, claims.user_id)

    async def _limit(self, ex: Exchange, user_id: int | None) -> Response | None:
        if ex.route in _UNLIMITED_ROUTES:
            return None
        if user_id is None:
            decision = await self.rate_limits.check_public(ex.client_ip)
        else:
            decision = await self.rate_limits.check_user(user_id)
        if decision is None or decision.allowed:
            ex.headers.update(decision.headers() if decision else {})
            return None
        self.metrics.observe_blocked(route=ex.route, scope="public" if user_id is None else "user")
        return _rate_limited(decision)

    async def _preflight(self, conn: HTTPConnection, send: Send) -> None:
        origin = conn.headers.get("origin", "")
        if origin not in self.settings.cors_origins:
            await send_error(send, 403, "Origin not allowed", "bad_origin")
            return
        requested = conn.headers.get("access-control-request-headers", "")
        headers = [
            (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            (b"access-control-allow-headers", requested.encode("latin-1") or b"authorization"),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _forwarding(self, conn: HTTPConnection) -> Forwarding:
        ex: Exchange = conn.scope["state"]["exchange"]
        peer = _peer(conn.scope) or "unknown"
        incoming = conn.headers.get("x-forwarded-for")
        trusted = is_trusted(peer, self.trusted)
        chain = f"{incoming}, {peer}" if trusted and incoming else peer
        scheme = "https" if conn.scope.get("scheme") in ("https", "wss") else "http"
        proto = conn.headers.get("x-forwarded-proto", scheme) if trusted else scheme
        return Forwarding(ex.client_ip, chain, proto, conn.headers.get("host", ""), ex.request_id)

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.http.forward(scope, receive, send, self._forwarding(HTTPConnection(scope)))

    async def _websocket(self, websocket: WebSocket) -> None:
        credentials = websocket.scope["state"]["credentials"]
        await self.websockets.run(websocket, credentials.token, self._forwarding(websocket))

    async def _metrics(self, request: Request) -> Response:
        ex: Exchange = request.scope["state"]["exchange"]
        if not self.settings.may_read_metrics(ex.client_ip):  # the real client, past proxies
            return error_response(403, "Metrics are not served to this address", "forbidden")
        return Response(
            self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def _health(self, _request: Request) -> Response:
        probes = await asyncio.gather(*(self._probe(u.url) for u in self.pool.upstreams))
        states = [probe == "ok" for probe in probes]
        for upstream, probe in zip(self.pool.upstreams, probes, strict=True):
            if probe == "ok":
                self.pool.mark_ok(upstream)
            elif probe == "unreachable":  # slow or unhealthy answers do not mark it down
                self.pool.mark_failed(upstream)
        upstreams = [
            {"name": f"upstream-{i + 1}", "status": "ok" if up else "down"}
            for i, up in enumerate(states)
        ]
        ok = any(states)
        body = {
            "status": "ok" if ok else "unavailable",
            "checks": {
                "gateway": "ok",
                "upstreams": upstreams,
                "websockets_open": self.websockets.open_count,
            },
        }
        return Response(orjson.dumps(body), 200 if ok else 503, media_type="application/json")

    async def _probe(self, url: str) -> str:
        """ "ok", "unreachable" (no connection could be made) or "failing" (slow or not 200)."""
        try:
            response = await self.http.client.get(url + "/health", timeout=2.0)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return "unreachable"
        except httpx.HTTPError:
            return "failing"
        return "ok" if response.status_code == 200 else "failing"


class _Asgi:
    """Marks a bound method as a raw ASGI endpoint (Starlette would treat it as a handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await refuse_handshake(send, scope, error_response(404, "Not found", "not_found"))
        return
    await send_error(send, 404, "Not found", "not_found")


def _rate_limited(decision: Decision) -> Response:
    response = error_response(429, "Too many requests, slow down", "rate_limited")
    response.headers.update(decision.headers())
    return response


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _is_preflight(conn: HTTPConnection) -> bool:
    return (
        conn.scope["method"] == "OPTIONS"
        and "origin" in conn.headers
        and "access-control-request-method" in conn.headers
    )


def create_app(
    settings: Settings,
    *,
    static_dir: Path | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 60.0,
    fail_timeout: float = 10.0,
    max_upstream_connections: int = 1000,
) -> Gateway:
    """The gateway app; `static_dir` defaults to parley/web. Nothing runs until served."""
    return Gateway(
        settings,
        static_dir=static_dir or WEB_DIR,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        fail_timeout=fail_timeout,
        max_upstream_connections=max_upstream_connections,
    )
