"""Upstream servers: round-robin with passive health, the HTTP proxy and the WebSocket relay."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import InvalidHandshake, InvalidStatus

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
from parley.gateway.relay import (
    CLOSE_TRY_AGAIN,
    RELAY_EXTENSION,
    RELAY_SEND,
    UpstreamClosed,
    UpstreamProtocol,
    open_upstream,
)
from parley.gateway.upstream import (
    ConnectFailed,
    PoolFull,
    ReadTimeout,
    Response,
    UpstreamClient,
    UpstreamError,
)

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
    Requests go through `upstream.UpstreamClient` (keep-alive, headers kept as bytes);
    an answer already complete when its headers arrive is sent in one piece.
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
        self.upstream = UpstreamClient(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            max_idle=min(200, max_connections),
        )
        # For the health probes only. A shared client must never keep cookies: one user's
        # Set-Cookie would otherwise be replayed on the next user's request.
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout)
        self.client = httpx.AsyncClient(timeout=timeout, trust_env=False, cookies=_no_cookies())
        self._addresses: dict[str, tuple[str, int]] = {}

    async def close(self) -> None:
        await self.upstream.close()
        await self.client.aclose()

    async def forward(self, scope: Scope, receive: Receive, send: Send, fwd: Forwarding) -> None:
        try:
            body = await self._body(scope, receive)
        except BodyRefused as refused:
            return await send_refusal(send, refused)
        except ClientGone:
            return
        method: str = scope["method"]
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        head, chunked = _request_head(method, target, scope["headers"], fwd, body)
        for upstream in self.pool.candidates():
            host, port = self._address(upstream)
            try:
                response = await self.upstream.request(
                    host, port, head(host, port), body, chunked=chunked, is_head=method == "HEAD"
                )
            except ConnectFailed:
                self.pool.mark_failed(upstream)
                if isinstance(body, _Body) and body.started:
                    break
                continue
            except PoolFull:
                return await send_error(
                    send, 503, "The gateway is busy, try again shortly", "unavailable"
                )
            except ReadTimeout:
                return await send_error(
                    send, 504, "The server did not answer in time", "gateway_timeout"
                )
            except BodyRefused as refused:
                return await send_refusal(send, refused)
            except ClientGone:
                return
            except UpstreamError:
                return await send_error(send, 502, "The server connection failed", "bad_gateway")
            self.pool.mark_ok(upstream)
            return await self._relay_response(response, send)
        await send_error(send, 502, "No server is available", "bad_gateway")

    def _address(self, upstream: Upstream) -> tuple[str, int]:
        address = self._addresses.get(upstream.url)
        if address is None:
            url = httpx.URL(upstream.url)
            address = (url.host, url.port or (443 if url.scheme == "https" else 80))
            self._addresses[upstream.url] = address
        return address

    async def _body(self, scope: Scope, receive: Receive) -> bytes | _Body | None:
        if not has_body(scope):
            return None
        limit = body_limit(scope["path"], self.settings)
        check_declared(scope, limit)
        if limit.upload:
            return _Body(receive, limit, self.settings.body_timeout)
        return await read_body(receive, limit, self.settings.body_timeout)

    async def _relay_response(self, response: Response, send: Send) -> None:
        try:
            headers = _response_headers(response.headers)
            start = {"type": "http.response.start", "status": response.status, "headers": headers}
            if response.complete:  # the usual JSON answer: all here with its headers
                body = response.body()
                response.release()
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(start)
            try:
                async for chunk in response.chunks():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError:
                logger.warning("upstream response broke off", exc_info=True)
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()


_DROP_REQUEST_RAW = frozenset(name.encode() for name in _DROP_REQUEST) | {
    b"content-length",
    b"host",
}
_DROP_RESPONSE_RAW = frozenset(name.encode() for name in _DROP_RESPONSE)


def _raw_connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


def _request_head(
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    fwd: Forwarding,
    body: bytes | _Body | None,
) -> tuple[Callable[[str, int], bytes], bool]:
    """The request line and headers as bytes (a function of the upstream, for a missing
    Host), and whether the body goes chunked: end-to-end headers as the client sent them,
    the forwarding headers, and the body's framing."""
    dropped = _DROP_REQUEST_RAW | _raw_connection_tokens(headers)
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode("latin-1"), target)]
    host: bytes | None = None
    declared: bytes | None = None
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"host":
            host = value if host is None else host
        elif name == b"content-length":
            declared = value
        if name not in dropped:
            lines.append(name + b": " + value + b"\r\n")
    for label, text in _forwarding_headers(fwd):
        lines.append(b"%s: %s\r\n" % (label.encode(), text.encode("latin-1")))
    chunked = False
    if isinstance(body, bytes):
        lines.append(b"content-length: %d\r\n" % len(body))
    elif isinstance(body, _Body):
        if declared is not None:
            lines.append(b"content-length: " + declared + b"\r\n")
        else:
            chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
    elif declared is not None:
        lines.append(b"content-length: " + declared + b"\r\n")
    lines.append(b"\r\n")
    rest = b"".join(lines[1:])
    first = lines[0]
    if host is not None:
        fixed = first + b"host: " + host + b"\r\n" + rest
        return (lambda _host, _port: fixed), chunked
    return (lambda h, p: first + b"host: %s:%d\r\n" % (h.encode(), p) + rest), chunked


def _response_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    dropped = _DROP_RESPONSE_RAW | _raw_connection_tokens(headers)
    return [(name, value) for name, value in headers if name not in dropped]


def strip_token(query_string: bytes) -> str:
    """The query string without token parameters (for upstream WebSockets and for logs)."""
    known = _stripped.get(query_string)
    if known is not None:
        return known
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    stripped = urlencode([(k, v) for k, v in pairs if "token" not in k.lower()])
    if b"token" not in query_string.lower():  # nothing secret in it: worth remembering
        if len(_stripped) >= 4096:
            _stripped.clear()
        _stripped[query_string] = stripped
    return stripped


_stripped: dict[bytes, str] = {}


class _Relay:
    """One relayed WebSocket: the client's ASGI channel and the upstream connection.

    Frames from the upstream are written to the client from the upstream protocol's
    callback while the client keeps up; otherwise they are appended to `pending` (bytes,
    as they came) and written by one writer task, a batch per wake-up. More than
    `max_pending` bytes already waiting when more frames come means a client that does not
    read: it is closed with 1013 (after what its transport already holds) and so is the
    upstream. Frames have no size limit in this direction: one larger than `max_pending`
    waits whole for a client that reads.
    """

    def __init__(self, send: Send, max_pending: int) -> None:
        self.send = send
        self.max_pending = max_pending
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.wake: asyncio.Event | None = None  # with the writer task: made when first needed
        self.end: tuple[int, str] | None = None  # the close the client gets after `pending`
        self.upstream: UpstreamProtocol | None = None
        self.writer: asyncio.Task[None] | None = None
        self.accepted = False  # the client's socket is open: a writer may run
        self.client_closed = False
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.write_now: Callable[[bytes], bool] | None = None

    def _wake(self) -> None:
        """Something waits for the client (frames, or the close): the writer runs; it is
        started here, so a client that keeps up never has one."""
        if not self.accepted:
            return  # `run` wakes it once the client's socket is open
        if self.writer is None:
            self.wake = asyncio.Event()
            self.writer = asyncio.get_running_loop().create_task(self.write_loop())
        assert self.wake is not None
        self.wake.set()

    def on_frames(self, data: bytes) -> None:
        if self.end is not None:
            return
        if not self.pending and self.write_now is not None and self.write_now(data):
            return  # the usual case: straight from the upstream's read to the client's write
        if self.pending_bytes > self.max_pending:
            self.stop(CLOSE_TRY_AGAIN, "client too slow")
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        self._wake()

    def on_close(self, code: int, reason: str) -> None:
        """The upstream closed: the client gets what is pending, then the same close."""
        if self.end is None:
            self.end = (_UNSENDABLE_CLOSE.get(code, code), reason)
            self._wake()

    def stop(self, code: int, reason: str) -> None:
        """Closes both sides now, dropping what the client has not been sent."""
        if self.end is None:
            self.end = (code, reason)
        self.pending.clear()
        self.pending_bytes = 0
        if self.upstream is not None:
            self.upstream.close(code, reason)
        if self.writer is not None:
            self.writer.cancel()
        task = asyncio.get_running_loop().create_task(self.close_client(code, reason))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def write_loop(self) -> None:
        wake = self.wake
        assert wake is not None
        while True:
            await wake.wait()
            wake.clear()
            if self.end is not None:
                try:
                    async with asyncio.timeout(_CLOSE_FLUSH_TIMEOUT):
                        await self._flush()
                except TimeoutError:
                    self.pending.clear()
                await self.close_client(*self.end)
                return
            await self._flush()

    async def _flush(self) -> None:
        while self.pending:
            data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
            self.pending.clear()
            self.pending_bytes = 0
            await self.send({"type": RELAY_SEND, "data": data})

    async def close_client(self, code: int, reason: str) -> None:
        if self.client_closed:
            return
        self.client_closed = True
        with contextlib.suppress(OSError, RuntimeError, ClientDisconnected):
            await self.send({"type": "websocket.close", "code": code, "reason": reason[:120]})


_background: set[asyncio.Task[None]] = set()
_CLOSE_FLUSH_TIMEOUT = 5.0
_UPSTREAM_CLOSE_WAIT = 5.0
DEFAULT_MAX_PENDING = 512 * 1024


class WebSocketRelay:
    """Relays frames both ways between a client and an upstream `/service/ws`.

    The client's side must be served by `RelayedClient` (the gateway's uvicorn protocol):
    frames from the server are written to it as bytes, never decoded.
    """

    def __init__(
        self,
        pool: UpstreamPool,
        *,
        connect_timeout: float,
        max_pending: int = DEFAULT_MAX_PENDING,
        handshake_timeout: float = 60.0,
    ) -> None:
        self.pool = pool
        self._connect_timeout = connect_timeout
        self._handshake_timeout = handshake_timeout
        self._max_pending = max_pending
        self._relays: set[_Relay] = set()

    @property
    def open_count(self) -> int:
        return len(self._relays)

    async def close_all(self, code: int = 1001) -> None:
        """Closes every relayed WebSocket with `code` (1001 on shutdown), both sides."""
        relays = list(self._relays)
        for relay in relays:
            relay.stop(code, "gateway shutting down")
        await asyncio.gather(
            *(asyncio.wait_for(asyncio.shield(r.finished), 5) for r in relays),
            return_exceptions=True,
        )

    async def run(self, websocket: WebSocket, token: str, fwd: Forwarding) -> None:
        if RELAY_EXTENSION not in websocket.scope.get("extensions", {}):
            raise RuntimeError("the gateway's WebSockets must be served by RelayedClient")
        # The raw ASGI channel: Starlette's wrapper would refuse RELAY_SEND.
        send, receive = websocket._send, websocket._receive
        relay = _Relay(send, self._max_pending)
        upstream = await self._connect(websocket, token, fwd, relay)
        if upstream is None:
            return
        relay.upstream = upstream
        await websocket.accept(subprotocol=upstream.subprotocol)
        self._relays.add(relay)
        relay.accepted = True
        relay.write_now = websocket.scope["extensions"][RELAY_EXTENSION]["write"]
        if relay.pending and relay.end is None:  # what came before the accept (the hello)
            data = b"".join(relay.pending)
            if relay.write_now(data):
                relay.pending.clear()
                relay.pending_bytes = 0
        if relay.pending or relay.end is not None:
            relay._wake()  # frames or the close wait: the writer sends them
        try:
            await _client_to_upstream(receive, relay, upstream)
        finally:
            self._relays.discard(relay)
            writer = relay.writer
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            upstream.close(1001, "going away")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(upstream.lost), _UPSTREAM_CLOSE_WAIT)
            upstream.abort()
            if not relay.finished.done():
                relay.finished.set_result(None)

    async def _connect(
        self, websocket: WebSocket, token: str, fwd: Forwarding, relay: _Relay
    ) -> UpstreamProtocol | None:
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
                connection = await open_upstream(
                    url,
                    sock=sock,
                    headers=headers,
                    subprotocols=subprotocols,
                    handshake_timeout=self._handshake_timeout,
                    on_frames=relay.on_frames,
                    on_close=relay.on_close,
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
            except (OSError, InvalidHandshake, UpstreamClosed):
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


async def _client_to_upstream(receive: Receive, relay: _Relay, upstream: UpstreamProtocol) -> None:
    """Client frames to the upstream until the client's side ends (its close or ours)."""
    while True:
        message: Message = await receive()
        if message["type"] == "websocket.disconnect":
            code = int(message.get("code") or 1000)
            upstream.close(_UNSENDABLE_CLOSE.get(code, code), str(message.get("reason") or ""))
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if data is None or not upstream.send(data):
            continue  # the upstream has closed: the client's close is on its way
        if not upstream.writable.is_set():
            await upstream.writable.wait()  # the server is not reading: neither do we


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
