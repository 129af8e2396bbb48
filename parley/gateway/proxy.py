"""The HTTP proxy: each request forwarded to the first upstream that answers, both bodies
streamed (parley/gateway/upstream.py is the client it speaks through)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from starlette.types import Receive, Scope, Send

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
from parley.gateway.answers import send_error
from parley.gateway.balancer import Upstream, UpstreamPool
from parley.gateway.forwarding import DROP_REQUEST, HOP_BY_HOP, Forwarding, forwarding_headers
from parley.gateway.upstream import (
    ConnectFailed,
    PoolFull,
    ReadTimeout,
    Response,
    UpstreamClient,
    UpstreamError,
)

logger = logging.getLogger("parley.gateway")

_DROP_RESPONSE = HOP_BY_HOP | {"date", "server"}


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


_DROP_REQUEST_RAW = frozenset(name.encode() for name in DROP_REQUEST) | {
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
    for label, text in forwarding_headers(fwd):
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


def _no_cookies() -> CookieJar:
    """A jar whose policy accepts no cookie at all."""
    return CookieJar(DefaultCookiePolicy(allowed_domains=[]))
