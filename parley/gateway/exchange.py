"""One request as it passes the gateway: its id and route label, the headers every answer
gets (security, CORS, rate limits, a default CSP), and what the metrics and the access log
record of it."""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from dataclasses import dataclass, field

import orjson
from starlette.requests import HTTPConnection
from starlette.types import Message, Scope, Send

from parley.gateway.forwarding import strip_token
from parley.gateway.metrics import GatewayMetrics
from parley.gateway.pages import CSP, PAGE_PREFIXES, PAGES

access_logger = logging.getLogger("parley.gateway.access")

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_EXPOSED = b"x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_template(scope: Scope) -> str:
    """A low-cardinality route label: a template, never the raw path."""
    path: str = scope["path"]
    if scope["type"] == "websocket":
        return "/ws" if path in ("/ws", "/service/ws") else "other"
    if path in PAGES or path in ("/metrics", "/health", "/stats"):
        return path
    for prefix, template in (
        ("/static/", "/static/*"),
        ("/service/", "/service/*"),
        *((prefix, prefix + "*") for prefix in PAGE_PREFIXES),
        ("/hooks/", "/hooks/*"),
    ):
        if path.startswith(prefix):
            return template
    if path == "/api/v1" or path.startswith("/api/v1/"):
        return "/api/v1/*"
    return "other"


@dataclass(slots=True)
class Exchange:
    """What the access log and the metrics need to know about one request."""

    request_id: str
    route: str
    client_ip: str
    started: float
    status: int = 0
    user_id: int | None = None
    answered: float | None = None
    headers: dict[str, str] = field(default_factory=dict)


def request_id(conn: HTTPConnection) -> str:
    incoming = conn.headers.get("x-request-id", "")
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


# Generated request ids: 32 hex digits, a random half per process and a counter (unique,
# and no system call per request as uuid4 makes).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def wrap_send(send: Send, ex: Exchange, conn: HTTPConnection, cors_origins: list[str]) -> Send:
    """`send` that notes the status and when the answer started, and adds the headers."""
    extra = _response_headers(ex, conn, cors_origins)

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


def _response_headers(
    ex: Exchange, conn: HTTPConnection, cors_origins: list[str]
) -> list[tuple[bytes, bytes]]:
    headers = [*_SECURITY_HEADERS, (b"x-request-id", ex.request_id.encode())]
    origin = conn.headers.get("origin")
    if origin and origin in cors_origins:
        headers += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", _EXPOSED),
            (b"vary", b"Origin"),
        ]
    return headers


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


def record(metrics: GatewayMetrics, scope: Scope, ex: Exchange) -> None:
    """The request's metrics and, at INFO, its access log line (without any token)."""
    ended = time.perf_counter()
    method = "WS" if scope["type"] == "websocket" else scope["method"]
    handshake = (ex.answered or ended) if method == "WS" else ended
    seconds = handshake - ex.started
    status = ex.status or 500
    metrics.observe_request(
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
