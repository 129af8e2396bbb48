"""The WebSocket proxy: each client socket relayed to an upstream `/service/ws`, the
upstream's frames written to the client as bytes (parley/gateway/relay.py is the wire
side), a client that does not read closed with 1013."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable

import httpx
from starlette.types import Message, Receive, Send
from starlette.websockets import WebSocket
from uvicorn.protocols.utils import ClientDisconnected
from websockets.exceptions import InvalidHandshake, InvalidStatus

from parley.gateway.answers import error_body, json_response, refuse_handshake
from parley.gateway.balancer import Upstream, UpstreamPool
from parley.gateway.forwarding import DROP_REQUEST, Forwarding, forwarding_headers, strip_token
from parley.gateway.relay import (
    CLOSE_TRY_AGAIN,
    RELAY_EXTENSION,
    RELAY_SEND,
    UpstreamClosed,
    UpstreamProtocol,
    open_upstream,
)
from parley.private_api import raw_channel

_WS_HANDSHAKE = frozenset(
    {"host", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"}
)
_UNSENDABLE_CLOSE = {1005: 1000, 1006: 1001, 1015: 1001}


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
        send, receive = raw_channel(websocket)
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
            for name, value in _end_to_end(websocket.scope["headers"], DROP_REQUEST | _WS_HANDSHAKE)
            if name in ("cookie", "origin", "user-agent", "accept-language")
        ]
        return [("authorization", f"Bearer {token}"), *kept, *forwarding_headers(fwd)]


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
    """The upstream's refusal (or ours) as the client's HTTP answer, else a 1008 close."""
    await refuse_handshake(websocket.send, websocket.scope, json_response(status, body))


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
