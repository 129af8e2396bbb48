"""Upstream servers: round-robin with passive health, the HTTP proxy and the WebSocket relay."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson
import websockets
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from parley.bodies import (
    BodyLimit,
    BodyRefused,
    ClientGone,
    body_limit,
    check_declared,
    has_body,
    next_chunk,
    read_body,
    send_refusal,
    too_large,
)
from parley.config import Settings

logger = logging.getLogger("parley.gateway")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_DROP_RESPONSE = HOP_BY_HOP | {"date", "server"}
_DROP_REQUEST = HOP_BY_HOP | {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
    "forwarded",
}
_WS_HANDSHAKE = frozenset(
    {"host", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"}
)
_UNSENDABLE_CLOSE = {1005: 1000, 1006: 1001, 1015: 1001}


@dataclass(slots=True)
class Upstream:
    url: str
    down_until: float = 0.0

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


class UpstreamPool:
    """Round-robin over upstreams; one that fails is skipped for `fail_timeout` seconds."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        fail_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstreams = [Upstream(url.rstrip("/")) for url in urls]
        if not self.upstreams:
            raise ValueError("PARLEY_UPSTREAMS: at least one upstream is needed")
        self._fail_timeout = fail_timeout
        self._clock = clock
        self._turn = itertools.count()

    def candidates(self) -> list[Upstream]:
        """Healthy upstreams in round-robin order, then those resting, soonest back first."""
        start = next(self._turn) % len(self.upstreams)
        ordered = self.upstreams[start:] + self.upstreams[:start]
        now = self._clock()
        healthy = [u for u in ordered if u.down_until <= now]
        resting = sorted((u for u in ordered if u.down_until > now), key=lambda u: u.down_until)
        return healthy + resting

    def mark_failed(self, upstream: Upstream) -> None:
        if upstream.down_until <= self._clock():
            logger.warning("upstream %s failed; skipped for %ss", upstream.url, self._fail_timeout)
        upstream.down_until = self._clock() + self._fail_timeout

    def mark_ok(self, upstream: Upstream) -> None:
        upstream.down_until = 0.0

    def is_up(self, upstream: Upstream) -> bool:
        return upstream.down_until <= self._clock()


@dataclass(frozen=True, slots=True)
class Forwarding:
    """What the gateway tells the upstream about the original request."""

    client_ip: str
    forwarded_for: str
    proto: str
    host: str
    request_id: str


def error_body(detail: str, code: str) -> bytes:
    return orjson.dumps({"detail": detail, "code": code})


async def send_error(send: Send, status: int, detail: str, code: str) -> None:
    body = error_body(detail, code)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[str]:
    tokens: set[str] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.decode("latin-1").split(","))
    return tokens


def _end_to_end(headers: list[tuple[bytes, bytes]], drop: frozenset[str]) -> list[tuple[str, str]]:
    dropped = drop | _connection_tokens(headers)
    kept = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name not in dropped:
            kept.append((name, raw_value.decode("latin-1")))
    return kept


def _forwarding_headers(fwd: Forwarding) -> list[tuple[str, str]]:
    return [
        ("x-forwarded-for", fwd.forwarded_for),
        ("x-forwarded-proto", fwd.proto),
        ("x-forwarded-host", fwd.host),
        ("x-real-ip", fwd.client_ip),
        ("x-request-id", fwd.request_id),
    ]


class _Body:
    """An upload body as an async stream read from the ASGI channel, never buffered whole:
    counted against its limit, and 408 when the client pauses longer than `idle` seconds."""

    def __init__(self, receive: Receive, limit: BodyLimit, idle: float) -> None:
        self._receive = receive
        self._limit = limit
        self._idle = idle
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        size = 0
        more = True
        while more:
            chunk, more = await next_chunk(self._receive, self._idle)
            size += len(chunk)
            if size > self._limit.max_bytes:
                raise too_large(self._limit)
            if chunk:
                yield chunk


class HttpProxy:
    """Forwards one request to the first upstream that answers; streams both bodies.

    JSON bodies (at most 64 KiB) are read whole first, so a slow sender never holds an
    upstream connection and a request can be retried on the next upstream; uploads are
    streamed. Only a connection that could not be made marks an upstream as failed: a
    slow answer (504) or our own pool being full (503) says nothing about its health.
    """

    def __init__(
        self,
        pool: UpstreamPool,
        *,
        settings: Settings,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 1000,
    ) -> None:
        self.pool = pool
        self.settings = settings
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=min(200, max_connections),
        )
        # A shared client must never keep cookies: one user's Set-Cookie would otherwise be
        # replayed on the next user's request.
        self.client = httpx.AsyncClient(
            timeout=timeout, limits=limits, trust_env=False, cookies=_no_cookies()
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def forward(self, scope: Scope, receive: Receive, send: Send, fwd: Forwarding) -> None:
        headers = _end_to_end(scope["headers"], _DROP_REQUEST) + _forwarding_headers(fwd)
        try:
            body = await self._body(scope, receive)
        except BodyRefused as refused:
            return await send_refusal(send, refused)
        except ClientGone:
            return
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        for upstream in self.pool.candidates():
            url = httpx.URL(upstream.url).copy_with(raw_path=target)
            request = self.client.build_request(scope["method"], url, headers=headers, content=body)
            try:
                response = await self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                self.pool.mark_failed(upstream)
                if isinstance(body, _Body) and body.started:
                    break
                continue
            except httpx.PoolTimeout:
                return await send_error(
                    send, 503, "The gateway is busy, try again shortly", "unavailable"
                )
            except httpx.TimeoutException:
                return await send_error(
                    send, 504, "The server did not answer in time", "gateway_timeout"
                )
            except BodyRefused as refused:
                return await send_refusal(send, refused)
            except ClientGone:
                return
            except httpx.HTTPError:
                return await send_error(send, 502, "The server connection failed", "bad_gateway")
            self.pool.mark_ok(upstream)
            return await self._relay_response(response, send)
        await send_error(send, 502, "No server is available", "bad_gateway")

    async def _body(self, scope: Scope, receive: Receive) -> bytes | _Body | None:
        if not has_body(scope):
            return None
        limit = body_limit(scope["path"], self.settings)
        check_declared(scope, limit)
        if limit.upload:
            return _Body(receive, limit, self.settings.body_timeout)
        return await read_body(receive, limit, self.settings.body_timeout)

    async def _relay_response(self, response: httpx.Response, send: Send) -> None:
        try:
            headers = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in _end_to_end(response.headers.raw, _DROP_RESPONSE)
            ]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError:
                logger.warning("upstream response broke off", exc_info=True)
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()


def strip_token(query_string: bytes) -> str:
    """The query string without token parameters (for upstream WebSockets and for logs)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if "token" not in k.lower()])


@dataclass(eq=False)
class _Relay:
    client: WebSocket
    upstream: ClientConnection
    closing_code: int | None = None
    tasks: list[asyncio.Task[tuple[str, int, str]]] = field(default_factory=list)


class WebSocketRelay:
    """Relays frames both ways between a client and an upstream `/service/ws`."""

    def __init__(
        self,
        pool: UpstreamPool,
        *,
        connect_timeout: float,
        max_size: int,
        handshake_timeout: float = 60.0,
    ) -> None:
        self.pool = pool
        self._connect_timeout = connect_timeout
        self._handshake_timeout = handshake_timeout
        self._max_size = max_size
        self._relays: set[_Relay] = set()

    @property
    def open_count(self) -> int:
        return len(self._relays)

    async def close_all(self, code: int = 1001) -> None:
        """Closes every relayed WebSocket with `code` (1001 on shutdown), both sides."""
        relays = list(self._relays)
        for relay in relays:
            relay.closing_code = code
        await asyncio.gather(
            *(relay.upstream.close(code, "gateway shutting down") for relay in relays),
            return_exceptions=True,
        )
        await asyncio.gather(*(_wait(relay) for relay in relays), return_exceptions=True)

    async def run(self, websocket: WebSocket, token: str, fwd: Forwarding) -> None:
        upstream = await self._connect(websocket, token, fwd)
        if upstream is None:
            return
        await websocket.accept(subprotocol=upstream.subprotocol)
        relay = _Relay(websocket, upstream)
        self._relays.add(relay)
        try:
            await self._pump(relay)
        finally:
            self._relays.discard(relay)
            await upstream.close()

    async def _connect(
        self, websocket: WebSocket, token: str, fwd: Forwarding
    ) -> ClientConnection | None:
        headers = self._upstream_headers(websocket, token, fwd)
        query = strip_token(websocket.scope.get("query_string", b""))
        protocols = websocket.headers.get("sec-websocket-protocol")
        subprotocols = [p.strip() for p in protocols.split(",")] if protocols else None
        for upstream in self.pool.candidates():
            # Only a TCP connection that cannot be made marks the upstream as failed; a
            # server busy answering the handshake is healthy and is given the read timeout.
            try:
                sock = await asyncio.wait_for(_open_socket(upstream), self._connect_timeout)
            except (OSError, TimeoutError):
                self.pool.mark_failed(upstream)
                continue
            url = upstream.ws_url + "/service/ws" + (f"?{query}" if query else "")
            try:
                connection = await websockets.connect(
                    url,
                    sock=sock,
                    additional_headers=headers,
                    subprotocols=subprotocols,  # type: ignore[arg-type]
                    max_size=self._max_size,
                    max_queue=16,
                    open_timeout=self._handshake_timeout,
                    compression=None,
                    proxy=None,
                    user_agent_header=None,
                )
            except InvalidStatus as exc:
                self.pool.mark_ok(upstream)
                await _deny(websocket, exc.response.status_code, bytes(exc.response.body or b""))
                return None
            except TimeoutError:
                sock.close()
                body = error_body("The server did not answer in time", "gateway_timeout")
                await _deny(websocket, 504, body)
                return None
            except (OSError, InvalidHandshake):
                sock.close()
                self.pool.mark_failed(upstream)
                continue
            self.pool.mark_ok(upstream)
            return connection
        await _deny(websocket, 502, error_body("No server is available", "bad_gateway"))
        return None

    @staticmethod
    def _upstream_headers(
        websocket: WebSocket, token: str, fwd: Forwarding
    ) -> list[tuple[str, str]]:
        kept = [
            (name, value)
            for name, value in _end_to_end(
                websocket.scope["headers"], _DROP_REQUEST | _WS_HANDSHAKE
            )
            if name in ("cookie", "origin", "user-agent", "accept-language")
        ]
        return [("authorization", f"Bearer {token}"), *kept, *_forwarding_headers(fwd)]

    async def _pump(self, relay: _Relay) -> None:
        relay.tasks = [
            asyncio.create_task(_client_to_upstream(relay)),
            asyncio.create_task(_upstream_to_client(relay)),
        ]
        done, pending = await asyncio.wait(relay.tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        side, code, reason = next(iter(done)).result()
        if relay.closing_code is not None:
            code, reason = relay.closing_code, "going away"
        if side == "client":
            await relay.upstream.close(_UNSENDABLE_CLOSE.get(code, code), reason)
        else:
            await _close_client(relay.client, _UNSENDABLE_CLOSE.get(code, code), reason)


async def _wait(relay: _Relay) -> None:
    if relay.tasks:
        await asyncio.wait(relay.tasks, timeout=5)


async def _client_to_upstream(relay: _Relay) -> tuple[str, int, str]:
    while True:
        message: Message = await relay.client.receive()
        if message["type"] == "websocket.disconnect":
            return "client", int(message.get("code") or 1000), str(message.get("reason") or "")
        try:
            if message.get("text") is not None:
                await relay.upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await relay.upstream.send(message["bytes"])
        except ConnectionClosed as exc:
            return "upstream", *_close_of(exc)


async def _upstream_to_client(relay: _Relay) -> tuple[str, int, str]:
    while True:
        try:
            data = await relay.upstream.recv()
        except ConnectionClosed as exc:
            return "upstream", *_close_of(exc)
        key = "text" if isinstance(data, str) else "bytes"
        try:
            await relay.client.send({"type": "websocket.send", key: data})
        except (OSError, RuntimeError):
            return "client", 1001, ""


def _close_of(exc: ConnectionClosed) -> tuple[int, str]:
    """The upstream's close code, or ours when we closed (1009 too big), or 1014 bad gateway."""
    frame = exc.rcvd or exc.sent
    if frame is None:
        return 1014, "upstream connection lost"
    return frame.code, frame.reason


async def _close_client(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.client_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(OSError, RuntimeError):
        await websocket.close(code, reason)


async def _deny(websocket: WebSocket, status: int, body: bytes) -> None:
    """An HTTP answer instead of the upgrade (ASGI denial response), else a 1008 close."""
    if "websocket.http.response" not in websocket.scope.get("extensions", {}):
        await websocket.close(1008)
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await websocket.send(
        {"type": "websocket.http.response.start", "status": status, "headers": headers}
    )
    await websocket.send({"type": "websocket.http.response.body", "body": body})


async def _open_socket(upstream: Upstream) -> socket.socket:
    """A connected non-blocking TCP socket to the upstream (its handshake comes after)."""
    url = httpx.URL(upstream.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"cannot resolve {url.host}")
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


def _no_cookies() -> CookieJar:
    """A jar whose policy accepts no cookie at all."""
    return CookieJar(DefaultCookiePolicy(allowed_domains=[]))
