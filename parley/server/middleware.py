"""The server's own ASGI layers around FastAPI: request metrics, and the WebSocket endpoint
called straight from uvicorn (`SocketFastPath`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from parley.private_api import route_path
from parley.server.metrics import ServerMetrics
from parley.server.realtime.ws import websocket_endpoint


class MetricsMiddleware:
    """Counts requests by method, route template and status (never raw paths)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.app_requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.http_requests.labels(scope["method"], str(status)).inc()


class SocketFastPath:
    """The WebSocket endpoint called straight from uvicorn, without FastAPI's middleware
    stack, routing and dependency solving: each of those layers keeps a coroutine (and
    FastAPI two exit stacks) alive for as long as the socket is open, about a third of
    an idle socket's memory. None of them acts on a WebSocket (the body limit, metrics
    and history fast path are HTTP only); an exception the endpoint raises still goes to
    the app's exception handlers, as Starlette's ExceptionMiddleware would do."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        # The paths the app's own WebSocket routes declare for this endpoint (none with
        # path parameters): the fast path serves exactly those.
        routes = [r for r in app.routes if getattr(r, "endpoint", None) is websocket_endpoint]
        if not routes or any(r.param_convertors for r in routes):  # type: ignore[attr-defined]
            raise TypeError("SocketFastPath needs the app's WebSocket routes, without parameters")
        self.paths = frozenset(r.path for r in routes)  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or route_path(scope) not in self.paths:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        ws = WebSocket(scope, receive, send)
        try:
            await websocket_endpoint(ws)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(ws, exc)
            if response is not None:
                await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        """The handler Starlette's ExceptionMiddleware would pick (not the 500 ones)."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None
