"""The gateway ASGI app: static client, JWT check, rate limits, proxy, metrics, access logs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from parley.config import Settings
from parley.gateway.assets import Assets, Page
from parley.gateway.auth import check_token, find_credentials, is_cross_site, is_public
from parley.gateway.metrics import GatewayMetrics
from parley.gateway.proxy import (
    Forwarding,
    HttpProxy,
    UpstreamPool,
    WebSocketRelay,
    error_body,
    send_error,
    strip_token,
)
from parley.gateway.ratelimit import Decision, RateLimits, client_ip, is_trusted, parse_networks
from parley.gateway.relay import RelayedClient
from parley.security import AccessTokens, TokenError
from parley.server.clock import Clock
from parley.wsserver import freeze_startup_heap

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_PAGES = {
    "/": "chat.html",
    "/chat": "chat.html",
    "/login": "login.html",
    "/register": "register.html",
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PAGE_CACHE = b"no-cache"
_STATIC_CACHE = b"public, max-age=300"
_HASHED_CACHE = b"public, max-age=31536000, immutable"
_UNLIMITED_ROUTES = frozenset({"/static/*", "/metrics"})

access_logger = logging.getLogger("parley.gateway.access")
logger = logging.getLogger("parley.gateway")


def route_template(scope: Scope) -> str:
    """A low-cardinality route label: a template, never the raw path."""
    path: str = scope["path"]
    if scope["type"] == "websocket":
        return "/ws" if path in ("/ws", "/service/ws") else "other"
    if path in _PAGES or path in ("/metrics", "/health", "/stats"):
        return path
    for prefix, template in (("/static/", "/static/*"), ("/service/", "/service/*")):
        if path.startswith(prefix):
            return template
    if path == "/api/v1" or path.startswith("/api/v1/"):
        return "/api/v1/*"
    return "other"


@dataclass(slots=True)
class _Exchange:
    """What the access log and the metrics need to know about one request."""

    request_id: str
    route: str
    client_ip: str
    started: float
    status: int = 0
    user_id: int | None = None
    answered: float | None = None
    headers: dict[str, str] = field(default_factory=dict)


_WS_PATHS = ("/ws", "/service/ws")


def _is_ws_path(scope: Scope) -> bool:
    return get_route_path(scope) in _WS_PATHS


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
        self._static = StaticFiles(directory=static_dir, check_dir=False)
        self.assets = Assets(static_dir)
        self.pages = {
            name: self.assets.render_page(name)
            for name in set(_PAGES.values())
            if (static_dir / name).is_file()
        }
        self.router = Router(routes=self._routes(), lifespan=self._lifespan, default=_not_found)

    def _routes(self) -> list[Route | Mount | WebSocketRoute]:
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        pages = [Route(path, self._page, methods=["GET", "HEAD"]) for path in _PAGES]
        proxy = _Asgi(self._proxy)
        return [
            *pages,
            Route("/metrics", self._metrics, methods=["GET"]),
            Route("/health", self._health, methods=["GET", "HEAD"]),
            Mount("/static", app=self._static_files),
            Route("/stats", proxy, methods=["GET", "HEAD"]),
            *(WebSocketRoute(path, self._websocket) for path in _WS_PATHS),
            Route("/service/{path:path}", proxy, methods=methods),
            Route("/api/v1", proxy, methods=methods),
            Route("/api/v1/{path:path}", proxy, methods=methods),
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
        exchange = _Exchange(
            request_id=_request_id(conn),
            route=route_template(scope),
            client_ip=client_ip(_peer(scope), conn.headers.get("x-forwarded-for"), self.trusted),
            started=time.perf_counter(),
        )
        scope.setdefault("state", {})["exchange"] = exchange
        wrapped = self._wrap_send(send, exchange, conn)
        try:
            if scope["type"] == "http":
                await self._counted(conn, scope, receive, wrapped, exchange)
            else:
                await self._handle(conn, scope, receive, wrapped, exchange)
        finally:
            self._record(scope, exchange)

    async def _counted(
        self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send, ex: _Exchange
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
        self, conn: HTTPConnection, scope: Scope, receive: Receive, send: Send, ex: _Exchange
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
            await _deny(send, scope, refusal)
        else:
            await refusal(scope, receive, send)

    async def _guard(self, conn: HTTPConnection, ex: _Exchange) -> Response | None:
        """Auth (protected routes) then the rate limit; a Response when the request is refused."""
        method = conn.scope.get("method", "GET")
        public = is_public(method, conn.scope["path"]) and conn.scope["type"] == "http"
        if public or ex.route == "other":  # "other" is a 404 whoever asks
            return await self._limit(ex, None)
        credentials = find_credentials(conn)
        try:
            claims = check_token(self.tokens, credentials)
        except TokenError:
            return _error(401, "Authentication required", "unauthorized")
        assert credentials is not None
        if is_cross_site(conn, credentials, self.settings.cors_origins):
            return _error(403, "Cross-site request refused", "bad_origin")
        ex.user_id = claims.user_id
        conn.scope["state"]["credentials"] = credentials
        return await self._limit(ex, claims.user_id)

    async def _limit(self, ex: _Exchange, user_id: int | None) -> Response | None:
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

    def _wrap_send(self, send: Send, ex: _Exchange, conn: HTTPConnection) -> Send:
        extra = self._response_headers(ex, conn)

        async def wrapped(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                ex.status = message["status"]
                ex.answered = time.perf_counter()
                message["headers"] = _merge_headers(
                    list(message.get("headers", [])), extra + _encoded(ex.headers)
                )
            elif kind == "websocket.accept":
                ex.status = 101
                ex.answered = time.perf_counter()
            elif kind == "websocket.close" and ex.status == 0:
                ex.status = 403
            await send(message)

        return wrapped

    def _response_headers(self, ex: _Exchange, conn: HTTPConnection) -> list[tuple[bytes, bytes]]:
        headers = [*_SECURITY_HEADERS, (b"x-request-id", ex.request_id.encode())]
        origin = conn.headers.get("origin")
        if origin and origin in self.settings.cors_origins:
            headers += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-expose-headers", _EXPOSED),
                (b"vary", b"Origin"),
            ]
        return headers

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

    def _record(self, scope: Scope, ex: _Exchange) -> None:
        ended = time.perf_counter()
        method = "WS" if scope["type"] == "websocket" else scope["method"]
        handshake = (ex.answered or ended) if method == "WS" else ended
        seconds = handshake - ex.started
        status = ex.status or 500
        self.metrics.observe_request(
            method=method, route=ex.route, status=status, seconds=seconds, user_id=ex.user_id
        )
        if not access_logger.isEnabledFor(logging.INFO):
            return  # the entry is built only to be written
        query = strip_token(scope.get("query_string", b""))
        entry = {
            "event": "access",
            "request_id": ex.request_id,
            "method": method,
            "route": ex.route,
            "path": scope["path"],
            "query": query or None,
            "status": status,
            "duration_ms": round((ended - ex.started) * 1000, 2),
            "user_id": ex.user_id,
            "client_ip": ex.client_ip,
        }
        access_logger.info(orjson.dumps(entry).decode())

    def _forwarding(self, conn: HTTPConnection) -> Forwarding:
        ex: _Exchange = conn.scope["state"]["exchange"]
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

    async def _page(self, request: Request) -> Response:
        page = self.pages.get(_PAGES[request.url.path])
        if page is None:
            return _error(404, "Not found", "not_found")
        return _page_response(page, request.headers.get("if-none-match"))

    async def _static_files(self, scope: Scope, receive: Receive, send: Send) -> None:
        resolved = self.assets.resolve(scope["path"].removeprefix("/static").lstrip("/"))
        if resolved is None:  # a hash from another deploy: never answer with other content
            response = _error(404, "Not found", "not_found")
            response.headers["cache-control"] = "no-store"
        else:
            path, hashed = resolved
            cache = _HASHED_CACHE if hashed else _STATIC_CACHE
            response = await self._serve_file(path, scope, cache)
        await response(scope, receive, send)

    async def _serve_file(self, path: str, scope: Scope, cache: bytes) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            return _error(405, "Method not allowed", "method_not_allowed")
        try:
            response = await self._static.get_response(path, scope)
        except HTTPException:
            return _error(404, "Not found", "not_found")
        if response.status_code in (200, 304):
            response.headers["cache-control"] = cache.decode()
        return response

    async def _metrics(self, request: Request) -> Response:
        ex: _Exchange = request.scope["state"]["exchange"]
        if not self.settings.may_read_metrics(ex.client_ip):  # the real client, past proxies
            return _error(403, "Metrics are not served to this address", "forbidden")
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


_EXPOSED = b"x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset"


class _Asgi:
    """Marks a bound method as a raw ASGI endpoint (Starlette would treat it as a handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await _deny(send, scope, _error(404, "Not found", "not_found"))
        return
    await send_error(send, 404, "Not found", "not_found")


def _error(status: int, detail: str, code: str) -> Response:
    return Response(error_body(detail, code), status, media_type="application/json")


def _page_response(page: Page, if_none_match: str | None) -> Response:
    """A page from memory: revalidated every time (no-cache), its import map allowed by hash."""
    headers = {"cache-control": _PAGE_CACHE.decode(), "etag": page.etag}
    if page.script_hash:
        headers["content-security-policy"] = CSP.replace(
            "script-src 'self'", f"script-src 'self' '{page.script_hash}'"
        )
    if if_none_match == page.etag:
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="text/html; charset=utf-8", headers=headers)


def _rate_limited(decision: Decision) -> Response:
    response = _error(429, "Too many requests, slow down", "rate_limited")
    response.headers.update(decision.headers())
    return response


async def _deny(send: Send, scope: Scope, response: Response) -> None:
    """Refuses a WebSocket handshake with an HTTP answer (ASGI denial extension), else 403."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(k, v) for k, v in response.raw_headers]
    await send(
        {
            "type": "websocket.http.response.start",
            "status": response.status_code,
            "headers": headers,
        }
    )
    await send({"type": "websocket.http.response.body", "body": bytes(response.body)})


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _request_id(conn: HTTPConnection) -> str:
    incoming = conn.headers.get("x-request-id", "")
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


# Generated request ids: 32 hex digits, a random half per process and a counter (unique,
# and no system call per request as uuid4 makes).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def _is_preflight(conn: HTTPConnection) -> bool:
    return (
        conn.scope["method"] == "OPTIONS"
        and "origin" in conn.headers
        and "access-control-request-method" in conn.headers
    )


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]


def _merge_headers(
    headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """Adds `extra` headers the response does not already carry (its own CSP wins)."""
    present = {name.lower() for name, _ in headers}
    merged = headers + [(k, v) for k, v in extra if k not in present]
    if b"content-security-policy" not in present:
        merged.append((b"content-security-policy", CSP.encode()))
    return merged


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


class GatewayServer(uvicorn.Server):
    """Closes relayed WebSockets with 1001 before uvicorn drops connections (it would say 1012)."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.gateway.websockets.close_all(1001), timeout=5)
        await super().shutdown(sockets)


def make_server(
    settings: Settings, gateway: Gateway | None = None, *, port: int | None = None
) -> GatewayServer:
    """A uvicorn server for the gateway on settings.host:settings.gateway_port."""
    app = gateway or create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.gateway_port if port is None else port,
        loop="uvloop",
        http="httptools",
        ws=RelayedClient,  # uvicorn's sans-I/O protocol + bytes relay (docs/performance.md)
        ws_max_size=settings.ws_max_frame,
        ws_per_message_deflate=False,  # frames are relayed as the server framed them
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    return GatewayServer(config, app)


def configure_logging(settings: Settings) -> None:
    """One JSON line per request on stderr from `parley.gateway.access`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(handler)
    access_logger.setLevel(settings.log_level.upper())
    access_logger.propagate = False


def run_gateway(settings: Settings) -> None:
    configure_logging(settings)
    server = make_server(settings)
    freeze_startup_heap()
    server.run()
